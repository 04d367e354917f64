"""Runs as rows: a rich table for the terminal, JSON lines, CSV and Markdown for files."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from lmtrain.runs.compare import differing_overrides
from lmtrain.runs.display_text import printable
from lmtrain.runs.record import RunRecord

STATUS_STYLE = {
    "finished": "green",
    "running": "cyan",
    "interrupted": "yellow",
    "failed": "red",
    "unreadable": "magenta",
}
# row field -> column title in CSV / Markdown, after the run and its override columns
_VALUE_COLUMNS = {
    "status": "status",
    "detail": "detail",
    "command": "command",
    "model": "model",
    "task": "task",
    "steps": "steps",
    "wall_seconds": "wall_s",
    "tokens_per_s": "tokens_per_s",
    "metric": "metric",
    "final": "final",
    "best": "best",
    "best_step": "best_step",
}
# the terminal table's columns and how each is aligned
_TABLE_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("run", "left"),
    ("status", "left"),
    ("command", "left"),
    ("model / task", "left"),
    ("overrides", "left"),
    ("steps", "right"),
    ("wall", "right"),
    ("tok/s", "right"),
    ("metric", "left"),
    ("final", "right"),
    ("best", "right"),
)


def display_path(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (default: the current directory) when below it, else absolute."""
    full, base = Path(path).resolve(), (Path.cwd() if base is None else Path(base)).resolve()
    return os.path.relpath(full, base) if full.is_relative_to(base) else str(path)


def run_rows(runs: Sequence[RunRecord], base: Path | None = None) -> list[dict[str, Any]]:
    """One JSON-ready dict per run: its path, status, differing overrides, progress and main metric.

    Args:
        runs: the runs being compared (the overrides shown are those that differ between them).
        base: paths are shown relative to this folder (default: the current directory).
    """
    keys = differing_overrides(runs)
    return [
        {
            "run": display_path(run.path, base),
            "status": run.status,
            "detail": run.detail,
            "kind": run.kind,
            "command": run.command,
            "model": run.model,
            "task": run.task,
            "overrides": {k: run.overrides[k] for k in keys if k in run.overrides},
            "steps": run.steps,
            "wall_seconds": run.wall_seconds,
            "tokens_per_s": None if run.tokens_per_s is None else round(float(run.tokens_per_s), 1),
            "metric": run.metric,
            "final": run.final,
            "best": run.best,
            "best_step": run.best_step,
        }
        for run in runs
    ]


def format_value(value: Any) -> str:
    """A compact cell, one format for every number: from 1,000 up whole with thousands separators
    (``18,790``, whether the value is an int or a float), below that 4 significant digits; '-' when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def status_text(row: dict[str, Any], max_chars: int = 60) -> str:
    """The status cell: the state, and how it ended (``interrupted by SIGINT at step 40``, ``failed: ...``)."""
    detail = row.get("detail")
    if not detail:
        return row["status"]
    text = f"{row['status']} {detail}" if row["status"] == "interrupted" else f"{row['status']}: {detail}"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s`` or ``2h07m``; '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def make_console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (a file, a pipe) tables get room instead of 80 columns."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=max(console.width, 200))


def runs_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    """A rich table of :func:`run_rows` rows."""
    table = Table(title=title, header_style="bold")
    for name, justify in _TABLE_COLUMNS:
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name not in ("run", "overrides"))
    for row in rows:
        status = row["status"]
        who = " / ".join(str(v) for v in (row["model"], row["task"]) if v) or "-"
        best = format_value(row["best"])
        if row["best"] is not None and row["best_step"] is not None:
            best += f" @{row['best_step']}"
        cells = [
            row["run"],
            status_text(row),
            row["command"] or "-",
            who,
            " ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "-",
            format_value(row["steps"]),
            format_duration(row["wall_seconds"]),
            format_value(row["tokens_per_s"]),
            row["metric"] or "-",
            format_value(row["final"]),
            best,
        ]
        # Text, not markup: overrides like data.train_files=[a.txt] must print as they are; escapes
        # and other control characters a run folder holds are shown, not obeyed
        table.add_row(
            *(
                Text(printable(cell), style=STATUS_STYLE.get(status, "") if i == 1 else "")
                for i, cell in enumerate(cells)
            )
        )
    return table


def json_lines(rows: Sequence[dict[str, Any]]) -> str:
    """One JSON object per row and line."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def _flat(rows: Sequence[dict[str, Any]], first: str) -> tuple[list[str], list[list[Any]]]:
    """Header and cells with one column per override key (for CSV and Markdown)."""
    keys = list(dict.fromkeys(k for row in rows for k in row["overrides"]))
    header = [first, *keys, *_VALUE_COLUMNS.values()]
    cells = [
        [row["run"], *(row["overrides"].get(k, "") for k in keys), *(row[f] for f in _VALUE_COLUMNS)] for row in rows
    ]
    return header, cells


def to_csv(rows: Sequence[dict[str, Any]], first: str = "run") -> str:
    """Rows as CSV, one column per differing override (empty cells for missing values)."""
    header, cells = _flat(rows, first)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in line] for line in cells])
    return out.getvalue()


def to_markdown(rows: Sequence[dict[str, Any]], first: str = "run") -> str:
    """Rows as a GitHub Markdown table."""
    header, cells = _flat(rows, first)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for line in cells:
        text = [format_value(v) if not isinstance(v, str) else printable(v).replace("|", "\\|") for v in line]
        lines.append("| " + " | ".join(t if t else "-" for t in text) + " |")
    return "\n".join(lines) + "\n"
