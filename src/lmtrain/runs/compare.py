"""What tells runs apart (their differing overrides), how to label them, and how to rank them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from lmtrain.run_folder.layout import lower_is_better
from lmtrain.runs.record import RunRecord

# overrides that only say where files go: never worth a column or a legend entry
_PLUMBING = ("hydra.", "data.cache_dir", "trainer.progress", "trainer.loggers", "trainer.resume")


def _canonical(value: str | None) -> str | None:
    """The same number written two ways (``1e-3``, ``0.001``) compares equal."""
    try:
        return repr(float(value)) if value is not None else None
    except ValueError:
        return value


def differing_overrides(runs: Sequence[RunRecord]) -> list[str]:
    """Override keys whose value is not the same in every run (first-seen order).

    A key given in some runs but not in others differs too. With a single run every
    override distinguishes it, so all of them are returned.
    """
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides if not k.startswith(_PLUMBING)))
    if len(runs) <= 1:
        return keys
    return [k for k in keys if len({_canonical(run.overrides.get(k)) for run in runs}) > 1]


def override_text(run: RunRecord, keys: Sequence[str]) -> str:
    """``key=value`` of ``keys`` that ``run`` has, space separated."""
    return " ".join(f"{k}={run.overrides[k]}" for k in keys if k in run.overrides)


def run_labels(runs: Sequence[RunRecord], max_chars: int = 70) -> list[str]:
    """A short, unique label per run: its distinguishing overrides, else its directory name."""
    keys = differing_overrides(runs)
    labels = [_shorten(override_text(run, keys), max_chars) for run in runs]
    for label in set(labels):
        same = [i for i, other in enumerate(labels) if other == label]
        if len(same) == 1 and label:
            continue
        # the same overrides (or none): the shortest path ending that tells the runs apart
        suffixes = _distinct_suffixes([runs[i].path for i in same])
        for i, suffix in zip(same, suffixes):
            labels[i] = f"{label} ({suffix})" if label else suffix
    return labels


def _distinct_suffixes(paths: Sequence[Path]) -> list[str]:
    """The last n parts of each path, with the smallest n that makes them all different."""
    longest = max(len(p.parts) for p in paths)
    for n in range(1, longest + 1):
        suffixes = [str(Path(*p.parts[-n:])) for p in paths]
        if len(set(suffixes)) == len(suffixes):
            return suffixes
    return [str(p) for p in paths]


def _shorten(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def rank_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Runs sorted best first by their main metric (direction by metric name); runs without a value last."""

    def key(run: RunRecord) -> tuple[int, float]:
        value = run.ranking_value
        if value is None or run.metric is None or not math.isfinite(value):
            return (1, 0.0)
        return (0, value if lower_is_better(run.metric) else -value)

    return sorted(runs, key=key)
