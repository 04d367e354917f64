"""A metric's values from ``metrics.jsonl`` events, against step, tokens seen or training time.

Events carry a ``step``; training events also carry ``train/tokens_seen`` (cumulative) and
``train/tokens_per_s`` (over the window since the previous training event). From those two the
time axis is rebuilt without timestamps: each window lasted ``new tokens / tokens per second``,
so the clock counts training time (evaluations and checkpoints included, start-up excluded)
and stays continuous across a resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lmtrain.errors import UserError
from lmtrain.runs.metrics_log import TOKENS_PER_S, TOKENS_SEEN, is_number, is_step

X_AXES = {"step": "step", "tokens": "tokens seen", "time": "training time (s)"}
CLOCK_METRICS = (TOKENS_SEEN, TOKENS_PER_S)
Series = tuple[np.ndarray, np.ndarray]  # steps, values


def metric_names(events: Iterable[dict[str, Any]]) -> list[str]:
    """Every metric name logged in ``events`` (sorted; ``step`` excluded)."""
    return sorted({key for event in events for key in event if key != "step"})


def collect_series(events: Iterable[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Series]:
    """Steps and values of each of ``metrics`` in one pass over ``events``, sorted by step, each step once
    (the last value logged wins); events without a valid step and values that are not finite numbers
    are left out.

    Returns:
        ``{metric: (steps, values)}`` as float arrays; empty arrays for a metric never logged.
    """
    by_step: dict[str, dict[int, float]] = {metric: {} for metric in metrics}
    for event in events:
        step = event.get("step")
        if not is_step(step):
            continue
        for metric, values in by_step.items():
            value = event.get(metric)
            if is_number(value):
                values[step] = float(value)
    series = {}
    for metric, values in by_step.items():
        steps = sorted(values)
        series[metric] = (np.array(steps, dtype=float), np.array([values[s] for s in steps], dtype=float))
    return series


def metric_series(events: Iterable[dict[str, Any]], metric: str) -> Series:
    """Steps and values of ``metric`` (see :func:`collect_series`)."""
    return collect_series(events, [metric])[metric]


def clock_of(series: dict[str, Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, cumulative tokens and cumulative training seconds at each training event, from step 0.

    Args:
        series: at least :data:`TOKENS_SEEN` and :data:`TOKENS_PER_S` (see :func:`collect_series`).
    Returns:
        Three equally long arrays starting at ``(0, 0, 0)``; just that point if nothing was logged.
    """
    steps, tokens = series[TOKENS_SEEN]
    _, rates = series[TOKENS_PER_S]
    if len(rates) != len(tokens):  # an old log without rates: no clock
        rates = np.full(len(tokens), np.nan)
    new_tokens = np.diff(np.concatenate([[0.0], tokens]))
    seconds = np.cumsum(np.where(rates > 0, new_tokens / np.where(rates > 0, rates, 1.0), 0.0))
    return np.concatenate([[0.0], steps]), np.concatenate([[0.0], tokens]), np.concatenate([[0.0], seconds])


def train_clock(events: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`clock_of` the training events in ``events``."""
    return clock_of(collect_series(events, CLOCK_METRICS))


def check_axis(x: str) -> None:
    """Raise a UserError unless ``x`` is one of :data:`X_AXES`."""
    if x not in X_AXES:
        raise UserError(f"x={x} is not an axis; choose one of {', '.join(X_AXES)}.")


def axis_values(series: dict[str, Series], steps: np.ndarray, x: str, run: str = "the run") -> np.ndarray:
    """The ``x`` axis (step | tokens | time) at ``steps``, interpolated between training events.

    Args:
        series: the run's series, with :data:`CLOCK_METRICS` unless ``x`` is ``step``.
    Raises:
        UserError: for an unknown axis, or tokens / time for a run that logged no tokens.
    """
    check_axis(x)
    if x == "step":
        return steps
    clock_steps, tokens, seconds = clock_of(series)
    if len(clock_steps) < 2:
        raise UserError(f"x={x} needs {TOKENS_SEEN} in metrics.jsonl, which {run} has not logged; use x=step.")
    return np.interp(steps, clock_steps, tokens if x == "tokens" else seconds)


def x_values(events: Iterable[dict[str, Any]], steps: np.ndarray, x: str, run: str = "the run") -> np.ndarray:
    """:func:`axis_values` read from ``events``."""
    check_axis(x)
    return axis_values(collect_series(events, CLOCK_METRICS) if x != "step" else {}, steps, x, run)


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with TensorBoard's debiasing (``weight`` 0 = no smoothing)."""
    if weight <= 0 or len(values) == 0:
        return values
    smoothed, last = np.empty_like(values), 0.0
    for i, value in enumerate(values):
        last = last * weight + (1.0 - weight) * value
        smoothed[i] = last / (1.0 - weight ** (i + 1))  # early points are not pulled towards 0
    return smoothed
