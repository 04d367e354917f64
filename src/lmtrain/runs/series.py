"""A metric's values from ``metrics.jsonl`` events, against step, tokens seen or training time.

Events carry a ``step``; training events also carry ``train/tokens_seen`` (cumulative) and
``train/tokens_per_s`` (over the window since the previous training event). From those two the
time axis is rebuilt without timestamps: each window lasted ``new tokens / tokens per second``,
so the clock counts training time (evaluations and checkpoints included, start-up excluded)
and stays continuous across a resume.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lmtrain.errors import UserError

X_AXES = {"step": "step", "tokens": "tokens seen", "time": "training time (s)"}
TOKENS_SEEN = "train/tokens_seen"
TOKENS_PER_S = "train/tokens_per_s"


def metric_names(events: Sequence[dict[str, Any]]) -> list[str]:
    """Every metric name logged in ``events`` (sorted; ``step`` excluded)."""
    return sorted({key for event in events for key in event if key != "step"})


def metric_series(events: Sequence[dict[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of ``metric``, sorted by step, each step once (the last value logged wins).

    Returns:
        ``(steps, values)`` as float arrays; empty when the metric was never logged.
    """
    by_step: dict[int, float] = {}
    for event in events:
        value = event.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            by_step[int(event["step"])] = float(value)
    steps = sorted(by_step)
    return np.array(steps, dtype=float), np.array([by_step[s] for s in steps], dtype=float)


def train_clock(events: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, cumulative tokens and cumulative training seconds at each training event, from step 0.

    Returns:
        Three equally long arrays starting at ``(0, 0, 0)``; just that point if nothing was logged.
    """
    steps, tokens = metric_series(events, TOKENS_SEEN)
    _, rates = metric_series(events, TOKENS_PER_S)
    if len(rates) != len(tokens):  # an old log without rates: no clock
        rates = np.full(len(tokens), np.nan)
    new_tokens = np.diff(np.concatenate([[0.0], tokens]))
    seconds = np.cumsum(np.where(rates > 0, new_tokens / np.where(rates > 0, rates, 1.0), 0.0))
    return np.concatenate([[0.0], steps]), np.concatenate([[0.0], tokens]), np.concatenate([[0.0], seconds])


def x_values(events: Sequence[dict[str, Any]], steps: np.ndarray, x: str, run: str = "the run") -> np.ndarray:
    """The ``x`` axis (step | tokens | time) at ``steps``, interpolated between training events.

    Raises:
        UserError: for an unknown axis, or tokens / time for a run that logged no tokens.
    """
    if x not in X_AXES:
        raise UserError(f"x={x} is not an axis; choose one of {', '.join(X_AXES)}.")
    if x == "step":
        return steps
    clock_steps, tokens, seconds = train_clock(events)
    if len(clock_steps) < 2:
        raise UserError(f"x={x} needs {TOKENS_SEEN} in metrics.jsonl, which {run} has not logged; use x=step.")
    return np.interp(steps, clock_steps, tokens if x == "tokens" else seconds)


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with TensorBoard's debiasing (``weight`` 0 = no smoothing)."""
    if weight <= 0 or len(values) == 0:
        return values
    smoothed, last = np.empty_like(values), 0.0
    for i, value in enumerate(values):
        last = last * weight + (1.0 - weight) * value
        smoothed[i] = last / (1.0 - weight ** (i + 1))  # early points are not pulled towards 0
    return smoothed
