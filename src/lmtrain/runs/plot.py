"""Training curves as a PNG (and SVG): one subplot per metric, one line per run.

Training metrics are noisy, so they are drawn smoothed (an exponential moving average, as in
TensorBoard) with the raw values faint behind, and the legend says which is which; evaluation
metrics are drawn as they are, with the baselines the run recorded as dashed lines. Step axes
have whole-number ticks. The legend names each run by the overrides that tell it apart. matplotlib draws
through its Agg canvas directly, so no display and no global backend are involved.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError
from lmtrain.files.atomic import make_dirs, write_with
from lmtrain.runs.baselines import draw_baselines
from lmtrain.runs.compare import run_labels
from lmtrain.runs.display_text import printable
from lmtrain.runs.record import RunRecord, load_run
from lmtrain.runs.series import CLOCK_METRICS, X_AXES, Series, axis_values, check_axis, collect_series, ema

log = logging.getLogger(__name__)

CURVES_FILE = "curves.png"
PANEL_INCHES = (6.0, 4.0)  # width, height of one subplot
DPI = 100  # so one subplot is 600 x 400 pixels
MAX_COLUMNS = 2
DEFAULT_SMOOTHING = 0.6
UNSMOOTHED = ("train/lr", "train/tokens_seen")  # training metrics that are not noisy
RAW_ALPHA = 0.25  # raw values, drawn faint behind the smoothed curve


def require_matplotlib() -> None:
    """Raise a UserError naming the extra to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install 'lmtrain[plot]'.") from None


def grid(n_metrics: int) -> tuple[int, int]:
    """Rows and columns of subplots for ``n_metrics`` panels."""
    columns = min(max(n_metrics, 1), MAX_COLUMNS)
    return math.ceil(max(n_metrics, 1) / columns), columns


def figure_pixels(n_metrics: int) -> tuple[int, int]:
    """Width and height in pixels of the PNG drawn for ``n_metrics`` panels."""
    rows, columns = grid(n_metrics)
    return round(columns * PANEL_INCHES[0] * DPI), round(rows * PANEL_INCHES[1] * DPI)


def default_metrics(runs: Sequence[RunRecord]) -> list[str]:
    """``train/loss`` and each run's main evaluation metric, where they were logged."""
    wanted = ["train/loss", *dict.fromkeys(f"eval/{r.metric}" for r in runs if r.metric)]
    logged = {name for run in runs for name in run.events.names}
    return [m for m in wanted if m in logged]


def _listed(names: Sequence[str], most: int = 40) -> str:
    """``a, b, c`` (printable; the first ``most`` and a count of the rest), or ``none``."""
    shown = ", ".join(printable(name) for name in names[:most])
    return (shown + (f" and {len(names) - most} more" if len(names) > most else "")) or "none"


def resolve_metrics(requested: Sequence[str] | None, runs: Sequence[RunRecord]) -> list[str]:
    """The metric names to draw; a name without ``/`` matches ``train/<name>`` and ``eval/<name>``.

    Raises:
        UserError: naming the logged metrics, when a requested one is in no run.
    """
    logged = sorted({name for run in runs for name in run.events.names})
    if not requested:
        defaults = default_metrics(runs)
        if not defaults:
            raise UserError(
                f"none of the runs logged train/loss or an evaluation metric; metrics that exist: {_listed(logged)}."
            )
        return defaults
    chosen: list[str] = []
    for name in requested:
        matches = [name] if name in logged else [m for m in logged if "/" not in name and m.split("/", 1)[-1] == name]
        if not matches:
            raise UserError(f"no run logged the metric '{name}'; metrics that exist: {_listed(logged)}.")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


@dataclass
class _Curves:
    """One run's series of the metrics drawn, read in one pass over its metrics log."""

    run: RunRecord
    label: str
    color: str
    series: dict[str, Series]


def _draw(ax: Any, curves: _Curves, metric: str, x: str, smoothing: float) -> bool:
    """One run's line for ``metric`` on ``ax`` (a noisy training metric: faint raw values and the smoothed
    curve); returns whether it was smoothed."""
    steps, values = curves.series[metric]
    if not len(steps):
        return False
    xs = axis_values(curves.series, steps, x, run=printable(curves.run.path))
    if metric.startswith("train/") and metric not in UNSMOOTHED and smoothing > 0 and len(values) > 2:
        ax.plot(xs, values, color=curves.color, alpha=RAW_ALPHA, linewidth=1)
        ax.plot(xs, ema(values, smoothing), color=curves.color, linewidth=1.8)
        return True
    ax.plot(xs, values, color=curves.color, linewidth=1.5, marker="o" if len(values) <= 30 else None, markersize=3)
    return False


def _style_axis(ax: Any, metric: str, x: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(metric)
    ax.set_xlabel(X_AXES[x])
    ax.grid(alpha=0.3)
    if x in ("step", "tokens"):  # counts: no tick at step 2.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    low, high = ax.get_ylim()
    if ("ppl" in metric or "perplexity" in metric) and low > 0 and high / low > 50:
        ax.set_yscale("log")  # perplexities span orders of magnitude early in training


def _panel_legend(
    ax: Any, runs: Sequence[_Curves] | None, smoothed: bool, smoothing: float, baselines: list[Any]
) -> None:
    """The legend of one panel: the runs (``runs``, given for one panel only), raw and smoothed, baselines."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c.color, linewidth=1.8, label=c.label) for c in runs or ()]
    if smoothed:
        handles += [
            Line2D([], [], color="grey", alpha=RAW_ALPHA, linewidth=1, label="raw"),
            Line2D([], [], color="grey", linewidth=1.8, label=f"smoothed (EMA {smoothing:g})"),
        ]
    handles += baselines
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="best")


def curves_figure(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] | None = None,
    x: str = "step",
    smoothing: float = DEFAULT_SMOOTHING,
    title: str | None = None,
) -> Any:
    """The matplotlib Figure of :func:`plot_runs` (see there); raises UserError when there is nothing to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_axis(x)
    with_events = []
    for run in runs:
        if run.problems:
            log.warning(
                "%s: %s; drawn from what could be read", printable(run.path), printable("; ".join(run.problems))
            )
        if run.events.names:
            with_events.append(run)
        else:
            log.warning("%s has no metrics.jsonl events; left out of the plot", printable(run.path))
    if not with_events:
        raise UserError("none of the runs has logged metrics (metrics.jsonl); nothing to plot.")
    chosen = resolve_metrics(metrics, with_events)
    wanted = [*chosen, *(CLOCK_METRICS if x != "step" else ())]
    curves = [
        _Curves(run, label, f"C{i % 10}", collect_series(run.events, wanted))
        for i, (run, label) in enumerate(zip(with_events, run_labels(with_events)))
    ]
    rows, columns = grid(len(chosen))
    fig = Figure(figsize=(columns * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    for i, metric in enumerate(chosen):
        ax = fig.add_subplot(rows, columns, i + 1)
        smoothed = any([_draw(ax, c, metric, x, smoothing) for c in curves])
        baselines = draw_baselines(ax, metric, [(c.run, c.label, c.color) for c in curves])
        _style_axis(ax, metric, x)
        _panel_legend(ax, curves if i == 0 and len(curves) > 1 else None, smoothed, smoothing, baselines)
    fig.suptitle(title if title is not None else (printable(with_events[0].path.name) if len(with_events) == 1 else ""))
    return fig


def plot_runs(
    runs: Sequence[RunRecord],
    out: str | Path,
    metrics: Sequence[str] | None = None,
    x: str = "step",
    svg: bool = False,
    smoothing: float = DEFAULT_SMOOTHING,
    title: str | None = None,
) -> list[Path]:
    """Draw ``metrics`` of ``runs`` against ``x`` and write ``out`` (a PNG), plus an SVG beside it if asked.

    Noisy training metrics are drawn smoothed with the raw values faint behind (the legend says
    which is which); the baselines a run's summary records (``baseline/<name>``) are dashed lines
    on the panel of the evaluation metric they stand for.

    Args:
        runs: the runs (read with :func:`lmtrain.runs.load_run`).
        out: the PNG to write (parent folders are created).
        metrics: metric names (None: ``train/loss`` and the main evaluation metric).
        x: step | tokens (``train/tokens_seen``) | time (training seconds).
        svg: also write ``out`` with the suffix ``.svg``.
        smoothing: EMA weight for training metrics (0 = raw only).
        title: figure title (default: the run directory for a single run).
    Returns:
        The files written.
    """
    require_matplotlib()
    fig = curves_figure(runs, metrics, x, smoothing, title)
    out = Path(out)
    make_dirs(out.parent)
    write_with(out, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    written = [out]
    if svg:
        write_with(out.with_suffix(".svg"), lambda tmp: fig.savefig(tmp, format="svg"))
        written.append(out.with_suffix(".svg"))
    return written


def save_run_curves(run_dir: str | Path) -> Path | None:
    """Write ``<run_dir>/curves.png`` (default metrics); skipped with one log line without matplotlib.

    A finished run must never fail over its picture, so plotting problems are logged, not raised.
    """
    try:
        require_matplotlib()
    except UserError:
        log.info("matplotlib is not installed, so no %s (pip install 'lmtrain[plot]')", CURVES_FILE)
        return None
    run = load_run(run_dir)
    try:
        path = plot_runs([run], Path(run_dir) / CURVES_FILE, title=_run_title(run))[0]
    except Exception as error:  # noqa: BLE001 - the run is done; a picture problem only gets a warning
        log.warning("could not draw %s: %s", CURVES_FILE, error)
        return None
    log.info("training curves: %s", path)
    return path


def _run_title(run: RunRecord) -> str:
    who = " ".join(f"{k}={v}" for k, v in (("model", run.model), ("task", run.task)) if v)
    return f"lmtrain {run.command or ''} {who} — {run.path.name}".replace("  ", " ")
