"""`lmtrain plot RUN [RUN ...] [metrics=[...]] [out=curves.png] [x=step|tokens|time] [svg=true]`.

    lmtrain plot outputs/pretrain/*                          # train/loss and the main eval metric
    lmtrain plot multirun/pretrain/2024-05-01_12-00-00 metrics=[train/loss,eval/mlm_acc] x=tokens
    lmtrain plot outputs/pretrain/run-a outputs/pretrain/run-b out=compare.png svg=true smooth=0.9
    lmtrain plot outputs/finetune/run-a outputs/finetune/run-b chart=confusion   # or chart=f1

Each RUN is a run directory or a folder holding runs (a sweep); options are ``key=value``
like every other lmtrain command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lmtrain.errors import UserError
from lmtrain.files.named_output import check_named_output, head_problem, writing
from lmtrain.runs.discovery import find_run_dirs
from lmtrain.runs.display_text import printable
from lmtrain.runs.plot import DEFAULT_SMOOTHING, plot_runs
from lmtrain.runs.record import load_runs
from lmtrain.runs.series import X_AXES
from lmtrain.runs.task_plots import CONFUSION_FILE, F1_FILE, plot_confusion, plot_per_class_f1

OPTIONS = {"metrics": "", "out": "", "x": "step", "svg": "false", "smooth": str(DEFAULT_SMOOTHING), "chart": "curves"}
# chart -> the picture drawn from the runs' summaries, and its default file
SUMMARY_CHARTS = {"confusion": (plot_confusion, CONFUSION_FILE), "f1": (plot_per_class_f1, F1_FILE)}
CURVES_ONLY = ("metrics", "x", "svg", "smooth")  # the options only chart=curves reads
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_picture_out(out: Path, svg: bool) -> None:
    """Refuse ``out=`` where a picture must not be written: a name that does not end in ``.png``, a folder, a link,
    or an existing file that is not a PNG (with ``svg``: an existing ``.svg`` beside it that is not an SVG).

    Raises:
        UserError: naming ``out`` and what to do.
    """
    if out.suffix.lower() != ".png":
        raise UserError(
            f"out={out}: lmtrain plot writes a PNG picture; give a name ending in .png (svg=true also writes "
            "the same picture as .svg beside it)."
        )
    check_named_output(out, "out", "a PNG picture", head_problem((PNG_SIGNATURE,), "a PNG"), "curves.png")
    if svg:
        beside = out.with_suffix(".svg")
        check_named_output(beside, "out", "an SVG picture", head_problem((b"<svg", b"<?xml"), "an SVG"), "curves.svg")


def parser() -> argparse.ArgumentParser:
    """The command line of `lmtrain plot` (options are parsed from ``key=value`` items)."""
    p = argparse.ArgumentParser(
        prog="lmtrain plot",
        description="Plot metrics of runs: one subplot per metric, one line per run (legend: the overrides that "
        "differ), training metrics smoothed with the raw values faint behind, the baselines each run "
        "recorded as dashed lines. A run that cannot be drawn is named, with the reason.",
        epilog="options (key=value): metrics=[train/loss,eval/mlm_acc] (default: train/loss and the main eval "
        f"metric)  out=curves.png  x={'|'.join(X_AXES)}  svg=true (also write an SVG)  "
        f"smooth={DEFAULT_SMOOTHING} (EMA weight for train/*, 0 = raw)  chart=curves|confusion|f1 "
        "(confusion matrices, a panel per run / F1 per class or entity type of fine-tuned runs)",
    )
    p.add_argument("items", nargs="+", metavar="RUN|key=value", help="run directories or sweep folders, and options")
    return p


def _split_list(value: str) -> list[str]:
    """``[a,b]``, ``a,b`` or ``a`` as a list of names."""
    return [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]


def _parse_bool(key: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise UserError(f"{key}={value}: expected true or false.")


def parse_items(items: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Split the command line into run paths and ``key=value`` options (unknown keys are errors); also returns
    the option keys given."""
    runs, options, given = [], dict(OPTIONS), set()
    for item in items:
        key, sep, value = item.partition("=")
        if sep and not Path(item).exists():
            if key not in OPTIONS:
                raise UserError(f"unknown option '{key}'; options: {', '.join(OPTIONS)}.")
            options[key] = value
            given.add(key)
        else:
            runs.append(item)
    if not runs:
        raise UserError("give at least one run directory (or a folder of runs) to plot.")
    return runs, options, given


def main(argv: list[str]) -> None:
    """Run `lmtrain plot` with ``argv`` (the arguments after ``plot``)."""
    runs, options, given = parse_items(parser().parse_args(argv).items)
    run_dirs = find_run_dirs(runs)
    if not run_dirs:
        raise UserError(f"no run directories (with .hydra/config.yaml or metrics.jsonl) under {', '.join(runs)}.")
    try:
        smoothing = float(options["smooth"])
    except ValueError:
        raise UserError(f"smooth={options['smooth']}: expected a number between 0 and 1.") from None
    if not 0 <= smoothing < 1:
        raise UserError(f"smooth={smoothing}: expected a number in [0, 1).")
    chart = options["chart"]
    if chart != "curves" and chart not in SUMMARY_CHARTS:
        raise UserError(f"chart={chart} is not a chart; choose curves, {', '.join(SUMMARY_CHARTS)}.")
    for key in CURVES_ONLY if chart in SUMMARY_CHARTS else ():
        if key in given:
            raise UserError(
                f"{key}={options[key]} is read only by chart=curves; chart={chart} draws the runs' summaries "
                "and would ignore it. Drop the key."
            )
    svg = _parse_bool("svg", options["svg"])
    if chart in SUMMARY_CHARTS:
        draw, default_out = SUMMARY_CHARTS[chart]
        out = Path(options["out"] or default_out).expanduser()
        check_picture_out(out, False)
        records = load_runs(run_dirs)
        with writing(out, "out"):
            written = [draw(records, out)]
    else:
        metrics = _split_list(options["metrics"]) if options["metrics"] else None
        out = Path(options["out"] or "curves.png").expanduser()
        check_picture_out(out, svg)
        records = load_runs(run_dirs)
        with writing(out, "out"):
            written = plot_runs(
                records,
                out,
                metrics=metrics,
                x=options["x"],
                svg=svg,
                smoothing=smoothing,
            )
    # the runs left out (no metrics, no confusion matrix ...) were each named above, with the reason
    read = f"{len(run_dirs)} run folder{'s' if len(run_dirs) != 1 else ''} read"
    Console(stderr=True).print(
        f"{read}; wrote " + ", ".join(printable(p) for p in written), highlight=False, markup=False, soft_wrap=True
    )
