"""Pictures of a fine-tuned run's final evaluation: confusion matrices and F1 per class (or entity type).

Both read ``summary.json`` only: classification runs carry ``per_class`` and ``confusion_matrix``,
NER runs ``eval/<TYPE>/f1``. Several runs are drawn side by side (one confusion matrix per run,
grouped bars per class), labelled by the overrides that tell them apart.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lmtrain.atomic import make_dirs, write_with
from lmtrain.errors import UserError
from lmtrain.runs.compare import run_labels
from lmtrain.runs.plot import DPI, require_matplotlib
from lmtrain.runs.record import RunRecord, load_run

log = logging.getLogger(__name__)

CONFUSION_FILE = "confusion.png"
F1_FILE = "f1_per_class.png"
_ANNOTATE_UP_TO = 20  # classes; beyond that the counts would not fit in their cells


def per_class_f1(summary: dict[str, Any]) -> dict[str, float]:
    """F1 of each class (classification's ``per_class``) or entity type (NER's ``eval/<TYPE>/f1``)."""
    if isinstance(summary.get("per_class"), dict):
        return {str(label): float(row["f1"]) for label, row in summary["per_class"].items()}
    return {key[len("eval/"):-len("/f1")]: float(value) for key, value in summary.items()
            if key.startswith("eval/") and key.endswith("/f1") and key.count("/") == 2
            and isinstance(value, (int, float))}


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(runs: Sequence[RunRecord], out: str | Path) -> Path:
    """One confusion matrix per run, side by side (colour: share of the gold row; text: counts).

    Raises:
        UserError: if no run's summary has a confusion matrix.
    """
    require_matplotlib()
    with_matrix = [run for run in runs if isinstance(run.summary.get("confusion_matrix"), dict)]
    if not with_matrix:
        raise UserError("none of the runs has a confusion matrix in summary.json; it is written by "
                        "`lmtrain finetune task=classification`.")
    labels = run_labels(with_matrix) if len(with_matrix) > 1 else [with_matrix[0].path.name]
    size = max(3.0, 0.5 * max(len(r.summary["confusion_matrix"]["labels"]) for r in with_matrix) + 2)
    fig = _figure(size * len(with_matrix), size)
    for i, (run, title) in enumerate(zip(with_matrix, labels)):
        names = run.summary["confusion_matrix"]["labels"]
        counts = np.asarray(run.summary["confusion_matrix"]["matrix"], dtype=float)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax = fig.add_subplot(1, len(with_matrix), i + 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title, fontsize="medium")
        if len(names) <= _ANNOTATE_UP_TO:
            for (row, col), count in np.ndenumerate(counts):
                ax.text(col, row, f"{count:.0f}", ha="center", va="center",
                        color="white" if shares[row, col] > 0.5 else "black", fontsize="small")
    return _save(fig, out)


def plot_per_class_f1(runs: Sequence[RunRecord], out: str | Path) -> Path:
    """F1 per class or entity type as bars, one colour per run.

    Raises:
        UserError: if no run's summary has per-class scores.
    """
    require_matplotlib()
    scores = [(run, per_class_f1(run.summary)) for run in runs]
    scores = [(run, f1) for run, f1 in scores if f1]
    if not scores:
        raise UserError("none of the runs has per-class or per-type F1 in summary.json; they are written by "
                        "`lmtrain finetune task=classification` and `task=ner`.")
    classes = list(dict.fromkeys(name for _, f1 in scores for name in f1))
    labels = run_labels([run for run, _ in scores]) if len(scores) > 1 else [scores[0][0].path.name]
    fig = _figure(max(6.0, 0.6 * len(classes) * len(scores) + 2), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(scores)
    for i, ((_, f1), label) in enumerate(zip(scores, labels)):
        xs = np.arange(len(classes)) + (i - (len(scores) - 1) / 2) * width
        ax.bar(xs, [f1.get(name, 0.0) for name in classes], width=width, label=label, color=f"C{i % 10}")
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 8 else 0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.grid(axis="y", alpha=0.3)
    if len(scores) > 1:
        ax.legend(fontsize="small")
    else:
        ax.set_title(labels[0])
    return _save(fig, out)


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    make_dirs(out.parent)
    write_with(out, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    return out


def save_task_plots(run_dir: str | Path) -> list[Path]:
    """Write ``confusion.png`` and ``f1_per_class.png`` into a finished run where its summary has the data.

    A finished run must never fail over a picture: problems (or a missing matplotlib) are logged.
    """
    try:
        require_matplotlib()
    except UserError:
        return []
    run = load_run(run_dir)
    written = []
    for wanted, draw, name in ((run.summary.get("confusion_matrix"), plot_confusion, CONFUSION_FILE),
                               (per_class_f1(run.summary), plot_per_class_f1, F1_FILE)):
        if not wanted:
            continue
        try:
            written.append(draw([run], Path(run_dir) / name))
        except Exception as error:  # noqa: BLE001 - the run is done; a picture problem only gets a warning
            log.warning("could not draw %s: %s", name, error)
    return written
