"""What `lmtrain embed` shows on the terminal: an epoch progress bar and rich result tables."""

from __future__ import annotations

import math
import time
from typing import Any, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class EpochProgress:
    """A rich progress bar over epochs with a free-text status (loss, words/s).

    Use as a context manager; with ``enabled=False`` every call does nothing. The bar is redrawn
    from the calling thread (at most every ``min_interval`` s) rather than by rich's refresh
    thread, which would be one more thread competing for the GIL and the CPU with torch's and
    gensim's threads on small machines.

    Args:
        description: shown left of the bar.
        epochs: the bar's total.
        enabled: draw the bar at all.
        console: where to draw (stdout by default).
        min_interval: seconds between redraws within an epoch.
    """

    def __init__(
        self,
        description: str,
        epochs: int,
        enabled: bool = True,
        console: Optional[Console] = None,
        min_interval: float = 0.2,
    ):
        self.epochs = epochs
        self.min_interval = min_interval
        self._last_draw = 0.0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]}/{task.total:.0f}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            auto_refresh=False,
        )
        self._task = self._progress.add_task(description, total=epochs, epoch=0, status="")

    def __enter__(self) -> EpochProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def epoch_done(self, epoch: int, status: str) -> None:
        """Mark ``epoch`` (1-based) finished and show ``status``."""
        self._progress.update(self._task, completed=epoch, epoch=epoch, status=status)
        self._draw()

    def within_epoch(self, epoch: int, fraction: float) -> None:
        """Move the bar to ``fraction`` of the way through ``epoch`` (1-based)."""
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval:
            self._progress.update(self._task, completed=epoch - 1 + fraction)
            self._draw()

    def _draw(self) -> None:
        self._last_draw = time.perf_counter()
        self._progress.refresh()


def _percent(value: Optional[float]) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _number(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def results_table(summary: dict[str, Any], similarity_names: list[str]) -> Table:
    """The end-of-run table: scores with their out-of-vocabulary shares, vocabulary and time."""
    table = Table(title=f"lmtrain embed: {summary.get('method')} vectors", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("skipped (OOV)", justify="right")
    table.add_column("evaluated", justify="right")
    if "eval/analogy_accuracy" in summary:
        table.add_row(
            "analogy accuracy",
            _percent(summary["eval/analogy_accuracy"]),
            _percent(summary["eval/analogy_oov"]),
            str(summary["eval/analogy_questions"]),
        )
    for name in similarity_names:
        table.add_row(
            f"{name} Spearman",
            _number(summary.get(f"eval/{name}_spearman")),
            _percent(summary.get(f"eval/{name}_oov")),
            str(summary.get(f"eval/{name}_pairs", "-")),
        )
    table.add_row("vocabulary", f"{summary['vocab_size']:,} words x {summary['vector_size']}", "", "")
    if summary.get("corpus_tokens"):
        table.add_row("corpus tokens", f"{summary['corpus_tokens']:,}", "", "")
    if "train/loss" in summary:
        table.add_row("final epoch loss", f"{summary['train/loss']:.4g}", "", "")
    table.add_row("wall time", f"{summary['wall_time_s']:.1f} s", "", "")
    return table


def neighbours_table(neighbours: dict[str, list[tuple[str, float]]]) -> Table:
    """One column per query word: its nearest neighbours with their cosine similarity."""
    table = Table(title="nearest neighbours (cosine)", title_justify="left")
    table.add_column("#", justify="right")
    for word in neighbours:
        table.add_column(word)
    depth = max((len(v) for v in neighbours.values()), default=0)
    for rank in range(depth):
        cells = [f"{hits[rank][0]} {hits[rank][1]:.3f}" if rank < len(hits) else "" for hits in neighbours.values()]
        table.add_row(str(rank + 1), *cells)
    return table
