"""``metrics.jsonl`` read line by line: well-formed events only, never the whole file in memory.

A run's metrics log can be large (a long run logs every few steps) or damaged (a line cut by a
kill, a hand edit, a crafted file). Each line is read on its own with a cap on its length; a line
that is not a JSON object with a whole, non-negative ``step`` is skipped and counted. Readers
keep only what they need: :class:`MetricsDigest` (what ``lmtrain runs`` shows) takes one pass and
holds one value per evaluation step of one metric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

from lmtrain.runs.run_files import open_regular

MAX_LINE_BYTES = 1 << 20  # a real event is a few hundred bytes
MAX_STEP = 2**53  # beyond this a float no longer tells steps apart
TOKENS_SEEN = "train/tokens_seen"
TOKENS_PER_S = "train/tokens_per_s"


def is_step(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a step: a whole number (not a bool) in [0, 2**53]."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STEP


def is_number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite real number (bools and strings are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _lines(f: BinaryIO) -> Iterator[bytes | None]:
    """Each complete line of ``f``; None for one longer than :data:`MAX_LINE_BYTES` (read past, not kept).

    A last line without its newline is a write cut short by a kill: it is left out, uncounted.
    """
    while True:
        line = f.readline(MAX_LINE_BYTES)
        if not line.endswith(b"\n"):
            if len(line) < MAX_LINE_BYTES:
                return  # end of file (an empty read, or a cut last line)
            while line and not line.endswith(b"\n"):  # over-long: skip to its end
                line = f.readline(MAX_LINE_BYTES)
            yield None
            continue
        yield line


def _event(line: bytes | None) -> dict[str, Any] | None:
    if line is None or not line.strip():
        return None
    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return event if isinstance(event, dict) and is_step(event.get("step")) else None


@dataclass
class EventLog:
    """The events of one ``metrics.jsonl``, read from the file anew on each iteration.

    Attributes:
        path: the file (it need not exist: then there are no events).
        skipped: lines left out by the last full iteration (not JSON, not an object, a bad step,
            too long, not UTF-8); a cut last line is not counted.
    """

    path: Path
    skipped: int = field(default=0, compare=False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            f = open_regular(self.path)
        except OSError:
            return
        skipped = 0
        with f:
            for line in _lines(f):
                event = _event(line)
                if event is not None:
                    yield event
                elif line is None or line.strip():
                    skipped += 1
        self.skipped = skipped

    @cached_property
    def names(self) -> list[str]:
        """Every metric name logged (sorted; ``step`` excluded); read once, then kept."""
        return sorted({key for event in self for key in event if key != "step"})


@dataclass
class Throughput:
    """Tokens per second over the training windows logged: tokens of windows with a rate / their seconds.

    A window is the span since the previous training event; it lasted ``new tokens / tokens per
    second``. A count that falls (the events after a resume) starts a new window without adding one.
    """

    tokens: float = 0.0
    seconds: float = 0.0
    _previous: float = 0.0

    def add(self, event: dict[str, Any]) -> None:
        """Count the window that ends at ``event`` (ignored without a valid token count)."""
        seen, rate = event.get(TOKENS_SEEN), event.get(TOKENS_PER_S)
        if not is_number(seen):
            return
        new, self._previous = seen - self._previous, seen
        if new >= 0 and is_number(rate) and rate > 0:
            self.tokens += new
            self.seconds += new / rate

    @property
    def tokens_per_s(self) -> float | None:
        """The average over the windows counted; None when none had a rate."""
        return self.tokens / self.seconds if self.seconds > 0 else None


@dataclass
class MetricsDigest:
    """What ``lmtrain runs`` needs from a metrics log, gathered in one pass.

    Attributes:
        last_step: the highest step logged (None without events).
        first_eval: the first evaluation metric logged, without ``eval/`` (None if none).
        metric: the metric whose values were kept (``eval/<name>``), and ``values`` its value at each
            step (the last one logged wins).
        tokens_per_s: the training throughput (None without token counts and rates).
        skipped: malformed lines left out.
    """

    last_step: int | None = None
    first_eval: str | None = None
    metric: str | None = None
    values: dict[int, float] = field(default_factory=dict)
    tokens_per_s: float | None = None
    skipped: int = 0


def digest(log: EventLog, metric: str | None) -> MetricsDigest:
    """Read ``log`` once, keeping the values of ``eval/<metric>`` (None: of the first evaluation metric logged)."""
    result, clock = MetricsDigest(), Throughput()
    result.metric = f"eval/{metric}" if metric else None
    for event in log:
        step = event["step"]
        result.last_step = step if result.last_step is None else max(result.last_step, step)
        if result.first_eval is None:
            result.first_eval = next((k[len("eval/") :] for k in event if k.startswith("eval/")), None)
            if result.first_eval is not None and result.metric is None:
                result.metric = f"eval/{result.first_eval}"
        value = event.get(result.metric) if result.metric else None
        if is_number(value):
            result.values[step] = float(value)
        clock.add(event)
    result.tokens_per_s, result.skipped = clock.tokens_per_s, log.skipped
    return result
