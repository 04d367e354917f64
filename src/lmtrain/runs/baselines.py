"""The baselines a run recorded (``baseline/<name>`` in ``summary.json``) and the metric each stands for.

A baseline is the held-out score of a trivial predictor, named as the metric it is compared with
plus the predictor: ``mlm_majority_acc`` for ``eval/mlm_acc``, ``unigram_ppl`` for ``eval/ppl``,
``lexicon_f1`` and ``all_o_f1`` for ``eval/f1``, ``majority_accuracy`` for ``eval/accuracy``. So
a baseline belongs to a metric when taking out one run of its ``_``-separated words gives the
metric's name. They are drawn as dashed, labelled lines on that metric's panel.
"""

from __future__ import annotations

from collections.abc import Sequence

from lmtrain.runs.chart import Level
from lmtrain.runs.display_text import printable
from lmtrain.runs.metrics_log import is_number
from lmtrain.runs.record import RunRecord

PREFIX = "baseline/"


def stands_for(baseline: str, metric: str) -> bool:
    """Whether ``baseline`` (``unigram_ppl``) is a score of ``metric`` (``ppl``, without ``eval/``)."""
    b, m = baseline.split("_"), metric.split("_")
    return len(b) > len(m) and any(b[:i] == m[:i] and b[len(b) - len(m) + i :] == m[i:] for i in range(len(m) + 1))


def recorded_baselines(run: RunRecord, metric: str) -> dict[str, float]:
    """``name -> value`` of the baselines in ``run``'s summary that stand for ``metric`` (``eval/<name>``)."""
    if not metric.startswith("eval/"):
        return {}
    name = metric[len("eval/") :]
    return {
        key[len(PREFIX) :]: float(value)
        for key, value in run.summary.items()
        if key.startswith(PREFIX) and is_number(value) and stands_for(key[len(PREFIX) :], name)
    }


def baseline_levels(metric: str, runs: Sequence[tuple[RunRecord, str, str]]) -> list[Level]:
    """The dashed horizontal lines of the baselines of ``metric``; one line for runs that share a value.

    Args:
        metric: the panel's metric.
        runs: ``(run, label, colour)`` of each run drawn (the colour and label of a baseline whose
            value differs between runs).
    Returns:
        The lines, labelled (``unigram_ppl baseline (412.3)``) for the panel's legend.
    """
    found: dict[tuple[str, float], list[tuple[str, str]]] = {}
    for run, label, color in runs:
        for name, value in recorded_baselines(run, metric).items():
            found.setdefault((name, value), []).append((label, color))
    names = [name for name, _ in found]
    levels = []
    for (name, value), owners in found.items():
        shared = names.count(name) == 1  # every run that recorded it has this value
        color = "#000000" if shared or len(runs) == 1 else owners[0][1]
        label = f"{printable(name)} baseline ({value:.4g})"
        if not shared:
            label += " — " + ", ".join(owner for owner, _ in owners)
        levels.append(Level(value, color, label))
    return levels
