"""Pictures of a fine-tuned run's final evaluation: confusion matrices and F1 per class (or entity type).

Both read ``summary.json`` only: classification runs carry ``per_class`` and ``confusion_matrix``,
NER runs ``eval/<TYPE>/f1``. Several runs are drawn together (a confusion matrix panel per run,
three to a row; grouped bars per class), labelled by the overrides that tell them apart; a run
without the data (or with data that cannot be drawn) is named in a warning with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmtrain.errors import UserError
from lmtrain.files.atomic import make_dirs, write_bytes
from lmtrain.runs.chart import BarPanel, Chart, HeatPanel, Key, Panel, palette
from lmtrain.runs.chart_drawing import draw_chart
from lmtrain.runs.compare import run_labels
from lmtrain.runs.display_text import printable
from lmtrain.runs.metrics_log import is_number
from lmtrain.runs.record import RunRecord, load_run

log = logging.getLogger(__name__)

CONFUSION_FILE = "confusion.png"
F1_FILE = "f1_per_class.png"
_ANNOTATE_UP_TO = 20  # classes; beyond that the counts would not fit in their cells


MAX_CLASSES = 200  # beyond this a matrix is a grey square; read the numbers in summary.json instead
MAX_PANELS = 48  # confusion matrices in one picture
PANEL_COLUMNS = 3


def per_class_f1(summary: dict[str, Any]) -> dict[str, float]:
    """F1 of each class (classification's ``per_class``) or entity type (NER's ``eval/<TYPE>/f1``); entries
    that are not numbers are left out."""
    if isinstance(summary.get("per_class"), dict):
        rows = summary["per_class"].items()
        return {
            str(label): float(row["f1"]) for label, row in rows if isinstance(row, dict) and is_number(row.get("f1"))
        }
    return {
        key[len("eval/") : -len("/f1")]: float(value)
        for key, value in summary.items()
        if key.startswith("eval/") and key.endswith("/f1") and key.count("/") == 2 and is_number(value)
    }


def confusion_matrix(summary: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """The labels and counts of ``summary["confusion_matrix"]``.

    Raises:
        ValueError: why there is no matrix to draw (missing, malformed or too large), in a few words.
    """
    entry = summary.get("confusion_matrix")
    if entry is None:
        raise ValueError("its summary.json has no confusion matrix (written by `lmtrain finetune task=classification`)")
    labels = entry.get("labels") if isinstance(entry, dict) else None
    rows = entry.get("matrix") if isinstance(entry, dict) else None
    if not (
        isinstance(labels, list)
        and labels
        and isinstance(rows, list)
        and len(rows) == len(labels)
        and all(isinstance(row, list) and len(row) == len(labels) and all(map(is_number, row)) for row in rows)
    ):
        raise ValueError("its confusion matrix is malformed (not a square list of numbers matching its labels)")
    if len(labels) > MAX_CLASSES:
        raise ValueError(f"its confusion matrix has {len(labels)} classes, more than {MAX_CLASSES} can show")
    return [printable(label) for label in labels], np.asarray(rows, dtype=float)


def _matrix_panel(names: list[str], counts: np.ndarray, title: str) -> HeatPanel:
    """One confusion matrix: colour is the share of the gold row, text the count (up to 20 classes)."""
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return HeatPanel(names, counts.tolist(), shares.tolist(), title, numbers=len(names) <= _ANNOTATE_UP_TO)


def drawable(runs: Sequence[RunRecord], read: Any, what: str) -> list[tuple[RunRecord, Any]]:
    """``(run, read(run.summary))`` of every run whose summary has the data; each run left out is named
    in a warning with the reason.

    Raises:
        UserError: when no run has it (with each run's reason), or more than :data:`MAX_PANELS` do.
    """
    kept, reasons = [], []
    for run in runs:
        try:
            kept.append((run, read(run.summary)))
        except ValueError as why:
            reasons.append(f"{printable(run.path)}: {why}")
    if not kept:
        raise UserError(f"none of the runs has {what} to draw: " + "; ".join(reasons) + ".")
    if len(kept) > MAX_PANELS:
        raise UserError(
            f"{len(kept)} runs have {what}, more than the {MAX_PANELS} one picture can show; give "
            "fewer runs (e.g. one sweep at a time)."
        )
    for reason in reasons:
        log.warning("left out of the picture: %s", reason)
    return kept


def confusion_chart(runs: Sequence[RunRecord]) -> Chart:
    """One confusion matrix per run, a panel each (up to three in a row), titled by what tells the runs apart.

    Runs without a matrix that can be drawn are left out, each named in a warning with the reason.

    Raises:
        UserError: see :func:`drawable`.
    """
    drawn = drawable(runs, confusion_matrix, "a confusion matrix")
    labels = run_labels([run for run, _ in drawn]) if len(drawn) > 1 else [printable(drawn[0][0].path.name)]
    classes = max(len(names) for _, (names, _) in drawn)
    side = max(300, min(50 * classes + 200, 16 * classes + 900))  # cells of 16 pixels or more: room for a name
    panels: list[Panel] = [_matrix_panel(names, counts, title) for (_, (names, counts)), title in zip(drawn, labels)]
    return Chart(panels, min(len(drawn), PANEL_COLUMNS), (side, side))


def plot_confusion(runs: Sequence[RunRecord], out: str | Path) -> Path:
    """Write :func:`confusion_chart` of ``runs`` to ``out`` (a PNG)."""
    return _save(confusion_chart(runs), out)


def f1_chart(runs: Sequence[RunRecord]) -> Chart:
    """F1 per class or entity type as bars, one colour per run (runs without scores named in a warning).

    Raises:
        UserError: see :func:`drawable`.
    """
    scores = drawable(runs, _f1_or_why, "per-class or per-type F1")
    classes = list(dict.fromkeys(name for _, f1 in scores for name in f1))[:MAX_CLASSES]
    labels = run_labels([run for run, _ in scores]) if len(scores) > 1 else [printable(scores[0][0].path.name)]
    groups = [
        (label, palette(i), [f1.get(name, 0.0) for name in classes])
        for i, ((_, f1), label) in enumerate(zip(scores, labels))
    ]
    panel = BarPanel([printable(c) for c in classes], groups, "F1", title="" if len(scores) > 1 else labels[0])
    if len(scores) > 1:
        panel.keys = [Key(label, color, width=6.0) for label, color, _ in groups]
    return Chart([panel], 1, (round(100 * max(6.0, 0.6 * len(classes) * len(scores) + 2)), 400))


def plot_per_class_f1(runs: Sequence[RunRecord], out: str | Path) -> Path:
    """Write :func:`f1_chart` of ``runs`` to ``out`` (a PNG)."""
    return _save(f1_chart(runs), out)


def _f1_or_why(summary: dict[str, Any]) -> dict[str, float]:
    scores = per_class_f1(summary)
    if not scores:
        raise ValueError(
            "its summary.json has no per-class or per-type F1 (written by `lmtrain finetune "
            "task=classification` and `task=ner`)"
        )
    return scores


def _save(chart: Chart, out: str | Path) -> Path:
    out = Path(out)
    make_dirs(out.parent)
    write_bytes(out, draw_chart(chart).png())
    return out


def save_task_plots(run_dir: str | Path) -> list[Path]:
    """Write ``confusion.png`` and ``f1_per_class.png`` into a finished run where its summary has the data.

    A finished run must never fail over a picture: problems are logged.
    """
    run = load_run(run_dir)
    written = []
    for wanted, draw, name in (
        ("confusion_matrix" in run.summary, plot_confusion, CONFUSION_FILE),
        (per_class_f1(run.summary), plot_per_class_f1, F1_FILE),
    ):
        if not wanted:
            continue
        try:
            written.append(draw([run], Path(run_dir) / name))
        except Exception as error:  # noqa: BLE001 - the run is done; a picture problem only gets a warning
            log.warning("could not draw %s: %s", name, error)
    return written
