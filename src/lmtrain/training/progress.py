"""What a person sees while training: a rich progress bar, log lines, and the final table."""

from __future__ import annotations

import logging
import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

log = logging.getLogger("lmtrain")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


class TrainingProgress:
    """A progress bar with loss, learning rate, tokens/s and ETA; plain log lines when disabled.

    Args:
        total_steps: optimizer steps of the run.
        start_step: step the run starts (or resumes) at.
        enabled: show the bar (False for CI logs and tests).
    """

    def __init__(self, total_steps: int, start_step: int, enabled: bool):
        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[tps]} tok/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, disable=not self.enabled,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step,
                                           loss="-", lr="-", tps="-")

    def __enter__(self) -> "TrainingProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance(self, step: int) -> None:
        """Move the bar to ``step``."""
        self.progress.update(self.task, completed=step)

    def show(self, step: int, metrics: dict[str, float]) -> None:
        """Show the latest training metrics (bar fields, or a log line without a bar)."""
        loss, lr, tps = metrics.get("train/loss", math.nan), metrics.get("train/lr", math.nan), metrics.get(
            "train/tokens_per_s", math.nan)
        if self.enabled:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", lr=f"{lr:.2e}", tps=f"{tps:,.0f}")
        else:
            log.info("step %d  loss %.4f  lr %.2e  %s tok/s", step, loss, lr, f"{tps:,.0f}")

    def note(self, message: str) -> None:
        """Print a line above the bar (evaluation results, checkpoints)."""
        if self.enabled:
            self.progress.console.print(message, markup=False, highlight=False)
        else:
            log.info(message)


def print_summary(title: str, summary: dict[str, Any]) -> None:
    """The final table of a run, on stderr so stdout stays clean for piping."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            table.add_row(key, _fmt(value))
    Console(stderr=True).print(table)
