"""What a person sees while training: a rich progress bar, log lines, and the final table."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

log = logging.getLogger("lmtrain")

# Redraws of the bar per second, from rich's own thread. Its default, 10, took 2-4% of a BERT-mini run's training time
# on 2 cores: each redraw stops one of the threads that share every matrix product.
BAR_REFRESHES_PER_SECOND = 2


def clock(seconds: float) -> str:
    """``H:MM:SS`` of a duration."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


class TrainingProgress:
    """A progress bar with loss, learning rate, tokens/s and ETA; plain log lines when disabled.

    Args:
        total_steps: optimizer steps of the run (as planned now; :meth:`set_total` moves it).
        start_step: step the run starts (or resumes) at.
        enabled: show the bar (False for CI logs and tests).
        max_epochs: the epoch limit, shown in the log lines (None = none).
    """

    def __init__(self, total_steps: int, start_step: int, enabled: bool, max_epochs: int | None = None):
        self.total, self.start_step, self.max_epochs = total_steps, start_step, max_epochs
        self.started = time.perf_counter()
        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.enabled,
            refresh_per_second=BAR_REFRESHES_PER_SECOND,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, loss="-", lr="-", tps="-")

    def __enter__(self) -> TrainingProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance(self, step: int) -> None:
        """Move the bar to ``step``."""
        self.progress.update(self.task, completed=step)

    def set_total(self, total_steps: int) -> None:
        """The run will take ``total_steps`` steps after all (an epoch or time limit ends it sooner)."""
        self.total = total_steps
        self.progress.update(self.task, total=total_steps)

    def eta_seconds(self, step: int) -> float | None:
        """Seconds left at the pace since this process started training (None before the first step)."""
        done = step - self.start_step
        if done <= 0:
            return None
        return (time.perf_counter() - self.started) / done * max(self.total - step, 0)

    def show(self, step: int, metrics: dict[str, float], epoch: float | None = None) -> None:
        """Show the latest training metrics (bar fields, or a log line without a bar).

        A log line says where the run is, for logs read without a terminal (CI, SLURM, nohup):
        ``step 10/800 (1%)  epoch 0.02  loss 8.8088  lr 9.17e-04  1,402 tok/s  elapsed 0:00:12  ETA 0:15:40``.
        """
        loss, lr, tps = (
            metrics.get("train/loss", math.nan),
            metrics.get("train/lr", math.nan),
            metrics.get("train/tokens_per_s", math.nan),
        )
        if self.enabled:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", lr=f"{lr:.2e}", tps=f"{tps:,.0f}")
            return
        eta = self.eta_seconds(step)
        epochs = "" if epoch is None else f"  epoch {epoch:.2f}" + (f"/{self.max_epochs}" if self.max_epochs else "")
        log.info(
            "step %d/%d (%d%%)%s  loss %.4f  lr %.2e  %s tok/s  elapsed %s  ETA %s",
            step,
            self.total,
            100 * step // max(self.total, 1),
            epochs,
            loss,
            lr,
            f"{tps:,.0f}",
            clock(time.perf_counter() - self.started),
            "-" if eta is None else clock(eta),
        )

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


def print_next_commands(commands: list[str]) -> None:
    """The commands that apply to a finished run, one per line under "Next:" (on stderr)."""
    console = Console(stderr=True, soft_wrap=True)
    console.print("Next:", style="bold", highlight=False)
    for command in commands:
        console.print(f"  {command}", markup=False, highlight=False)
