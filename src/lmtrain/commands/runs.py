"""`lmtrain runs [DIR ...] [--json]`: list runs with their status, differing overrides and main metric.

lmtrain runs                          # everything under ./outputs and ./multirun
lmtrain runs multirun/pretrain/2024-05-01_12-00-00
lmtrain runs outputs --json | jq .    # one JSON object per run
"""

from __future__ import annotations

import argparse
import sys

from lmtrain.runs.discovery import DEFAULT_ROOTS, find_run_dirs
from lmtrain.runs.display_text import printable
from lmtrain.runs.record import RUNNING_WINDOW_S, load_runs
from lmtrain.runs.table import json_lines, make_console, run_rows, runs_table


def parser() -> argparse.ArgumentParser:
    """The command line of `lmtrain runs`."""
    p = argparse.ArgumentParser(
        prog="lmtrain runs",
        description="List run directories (found by .hydra/config.yaml or metrics.jsonl) with their status "
        "(finished, running, interrupted = resumable with `lmtrain resume`, failed, as each command "
        "recorded it in status.json on exit; unreadable = a file of the folder cannot be read, "
        "with the reason), the overrides "
        "that differ between them, steps, wall time, tokens/s and the final and best main metric.",
    )
    p.add_argument(
        "dirs",
        nargs="*",
        metavar="DIR",
        help=f"run directories or folders to search (default: {' and '.join(DEFAULT_ROOTS)})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per run instead of a table")
    p.add_argument(
        "--running-window",
        type=float,
        default=RUNNING_WINDOW_S,
        metavar="S",
        help="a run without summary.json whose files changed in the last S seconds is running "
        f"(default {RUNNING_WINDOW_S:.0f})",
    )
    return p


def _title(rows: list, what: str) -> str:
    return f"{len(rows)} {what}{'s' if len(rows) != 1 else ''}"


def main(argv: list[str]) -> None:
    """Run `lmtrain runs` with ``argv`` (the arguments after ``runs``)."""
    args = parser().parse_args(argv)
    run_dirs = find_run_dirs(args.dirs or None)
    runs = load_runs(run_dirs, running_window=args.running_window)
    # training runs are compared with each other; generate / evaluate / export / predict runs apart
    training = run_rows([run for run in runs if run.kind == "training"])
    other = run_rows([run for run in runs if run.kind != "training"])
    if args.json:
        sys.stdout.write(json_lines(training + other))
        return
    console = make_console()
    if not runs:
        where = " ".join(args.dirs) or " and ".join(f"./{d}" for d in DEFAULT_ROOTS)
        console.print(f"no runs found under {printable(where)}", highlight=False, markup=False)
        return
    if training:
        console.print(runs_table(training, title=_title(training, "run")))
    if other:
        console.print(
            runs_table(other, title=_title(other, "run") + " of other commands (generate, evaluate, export, predict)")
        )
