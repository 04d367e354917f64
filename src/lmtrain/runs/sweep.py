"""After a sweep (``-m``): every job ranked by its main metric, printed and written beside the jobs.

    <sweep dir>/sweep_summary.csv   one row per job, one column per swept override
    <sweep dir>/sweep_summary.md    the same as a Markdown table

Hydra calls :class:`SweepSummary` once all jobs have returned (``hydra.callbacks`` in
``configs/pretrain.yaml``); ``write_sweep_summary`` does the same for any sweep folder later.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from rich.console import Console

from lmtrain.runs.compare import rank_runs
from lmtrain.runs.discovery import find_run_dirs
from lmtrain.runs.record import load_runs
from lmtrain.runs.table import make_console, run_rows, runs_table, to_csv, to_markdown

log = logging.getLogger(__name__)

CSV_FILE = "sweep_summary.csv"
MARKDOWN_FILE = "sweep_summary.md"


def sweep_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Rows (see :func:`lmtrain.runs.table.run_rows`) of every job under ``sweep_dir``, best first.

    Job paths are relative to ``sweep_dir``.
    """
    sweep_dir = Path(sweep_dir)
    runs = rank_runs(load_runs(find_run_dirs([sweep_dir])))
    return run_rows(runs, base=sweep_dir)


def write_sweep_summary(sweep_dir: str | Path, console: Console | None = None) -> list[Path]:
    """Write ``sweep_summary.csv`` and ``.md`` into ``sweep_dir`` and print the table.

    Args:
        sweep_dir: the sweep folder (Hydra's ``hydra.sweep.dir``).
        console: where the table is printed (default: standard output).
    Returns:
        The two files written (none if the folder holds no jobs).
    """
    sweep_dir = Path(sweep_dir)
    rows = sweep_rows(sweep_dir) if sweep_dir.is_dir() else []
    if not rows:
        log.warning("no job directories under %s: no sweep summary", sweep_dir)
        return []
    csv_path, md_path = sweep_dir / CSV_FILE, sweep_dir / MARKDOWN_FILE
    csv_path.write_text(to_csv(rows, first="job"), encoding="utf-8")
    metric = next((row["metric"] for row in rows if row["metric"]), None)
    heading = f"# Sweep {sweep_dir.name}: {len(rows)} jobs" + (f", best first by eval/{metric}" if metric else "")
    md_path.write_text(heading + "\n\n" + to_markdown(rows, first="job"), encoding="utf-8")
    (console or make_console()).print(runs_table(rows, title=f"sweep {sweep_dir} — best first"))
    log.info("sweep summary: %s, %s", csv_path, md_path)
    return [csv_path, md_path]


class SweepSummary(Callback):
    """Hydra callback: after the last job of a multirun, summarise the sweep (see the module docstring)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Write and print the sweep summary of ``config.hydra.sweep.dir``."""
        write_sweep_summary(Path(str(config.hydra.sweep.dir)))
