"""Training curves as a PNG (and SVG): one panel per metric, one line per run.

Training metrics are noisy, so they are drawn smoothed (an exponential moving average, as in
TensorBoard) with the raw values faint behind, and the legend says which is which; evaluation
metrics are drawn as they are, with the baselines the run recorded as dashed lines. Step axes
have whole-number ticks. The legend names each run by the overrides that tell it apart. The
picture is a :class:`~lmtrain.runs.chart.Chart`, drawn without a plotting library (see
:mod:`lmtrain.runs.drawing`), so every finished run gets its curves in milliseconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmtrain.errors import UserError
from lmtrain.files.atomic import make_dirs, write_bytes
from lmtrain.runs.baselines import baseline_levels
from lmtrain.runs.chart import Chart, Curve, Key, LinePanel, Panel, palette
from lmtrain.runs.chart_drawing import draw_chart
from lmtrain.runs.compare import run_labels
from lmtrain.runs.display_text import printable
from lmtrain.runs.record import RunRecord, load_run
from lmtrain.runs.series import CLOCK_METRICS, X_AXES, Series, axis_values, check_axis, collect_series, ema

log = logging.getLogger(__name__)

CURVES_FILE = "curves.png"
PANEL_PIXELS = (600, 400)  # width, height of one panel
MAX_COLUMNS = 2
DEFAULT_SMOOTHING = 0.6
UNSMOOTHED = ("train/lr", "train/tokens_seen")  # training metrics that are not noisy
RAW_ALPHA = 0.25  # raw values, drawn faint behind the smoothed curve


def grid(n_metrics: int) -> tuple[int, int]:
    """Rows and columns of subplots for ``n_metrics`` panels."""
    columns = min(max(n_metrics, 1), MAX_COLUMNS)
    return math.ceil(max(n_metrics, 1) / columns), columns


def figure_pixels(n_metrics: int) -> tuple[int, int]:
    """Width and height in pixels of the PNG drawn for ``n_metrics`` panels."""
    rows, columns = grid(n_metrics)
    return columns * PANEL_PIXELS[0], rows * PANEL_PIXELS[1]


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


def _lines(curves: _Curves, metric: str, x: str, smoothing: float) -> tuple[list[Curve], bool]:
    """One run's lines for ``metric`` (a noisy training metric: faint raw values under the smoothed
    curve), and whether it was smoothed."""
    steps, values = curves.series[metric]
    if not len(steps):
        return [], False
    xs = axis_values(curves.series, steps, x, run=printable(curves.run.path)).tolist()
    if metric.startswith("train/") and metric not in UNSMOOTHED and smoothing > 0 and len(values) > 2:
        raw = Curve(xs, values.tolist(), curves.color, width=1.0, alpha=RAW_ALPHA)
        return [raw, Curve(xs, ema(values, smoothing).tolist(), curves.color, width=1.8)], True
    return [Curve(xs, values.tolist(), curves.color, markers=len(values) <= 30)], False


def _panel(metric: str, runs: Sequence[_Curves], x: str, smoothing: float, name_runs: bool) -> LinePanel:
    """The panel of ``metric``: every run's line, the baselines recorded for it, and the legend
    (the runs themselves only where ``name_runs``)."""
    panel = LinePanel(printable(metric), X_AXES[x], integer_x=x in ("step", "tokens"))
    smoothed = False
    for curves in runs:
        lines, was_smoothed = _lines(curves, metric, x, smoothing)
        panel.curves += lines
        smoothed |= was_smoothed
    panel.levels = baseline_levels(metric, [(c.run, c.label, c.color) for c in runs])
    panel.keys = [Key(c.label, c.color) for c in runs] if name_runs else []
    if smoothed:
        panel.keys += [Key("raw", "#808080", 1.0, RAW_ALPHA), Key(f"smoothed (EMA {smoothing:g})", "#808080")]
    values = [v for c in panel.curves for v in c.ys if math.isfinite(v)] + [level.value for level in panel.levels]
    low, high = min(values, default=0.0), max(values, default=0.0)
    # perplexities span orders of magnitude early in training
    panel.log_y = ("ppl" in metric or "perplexity" in metric) and low > 0 and high / low > 50
    return panel


def curves_chart(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] | None = None,
    x: str = "step",
    smoothing: float = DEFAULT_SMOOTHING,
    title: str | None = None,
) -> Chart:
    """The chart :func:`plot_runs` draws (see there); raises UserError when there is nothing to draw."""
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
        _Curves(run, label, palette(i), collect_series(run.events, wanted))
        for i, (run, label) in enumerate(zip(with_events, run_labels(with_events)))
    ]
    panels: list[Panel] = [
        _panel(metric, curves, x, smoothing, name_runs=i == 0 and len(curves) > 1) for i, metric in enumerate(chosen)
    ]
    _, columns = grid(len(chosen))
    if title is None:
        title = printable(with_events[0].path.name) if len(with_events) == 1 else ""
    return Chart(panels, columns, PANEL_PIXELS, title)


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
    picture = draw_chart(curves_chart(runs, metrics, x, smoothing, title))
    out = Path(out)
    make_dirs(out.parent)
    write_bytes(out, picture.png())
    written = [out]
    if svg:
        write_bytes(out.with_suffix(".svg"), picture.svg().encode())
        written.append(out.with_suffix(".svg"))
    return written


def save_run_curves(run_dir: str | Path) -> Path | None:
    """Write ``<run_dir>/curves.png`` (default metrics).

    A finished run must never fail over its picture, so plotting problems are logged, not raised.
    """
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
