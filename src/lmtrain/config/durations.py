"""Durations written by people: ``90s``, ``5m``, ``1h30m``, ``2d`` or ``HH:MM:SS``, as seconds."""

from __future__ import annotations

import math
import re
from typing import overload

from lmtrain.errors import UserError

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?"
    r"\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


@overload
def parse_duration(text: str | int | float, key: str = ...) -> float:
    """A duration given: its seconds."""


@overload
def parse_duration(text: None, key: str = ...) -> None:
    """No duration: None."""


@overload
def parse_duration(text: str | int | float | None, key: str = ...) -> float | None:
    """A duration that may be unset: its seconds, or None."""


def parse_duration(text: str | int | float | None, key: str = "trainer.max_time") -> float | None:
    """Seconds of a duration: ``90`` / ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` or ``"HH:MM:SS"``; None stays None.

    Raises:
        UserError: the text is none of these, or not positive, naming ``key``.
    """
    if text is None:
        return None
    value = str(text).strip()
    seconds: float | None = None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    elif re.fullmatch(r"\d+:\d{1,2}(:\d{1,2})?", value):
        parts = [int(p) for p in value.split(":")]
        seconds = float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
    else:
        match = _DURATION.match(value)
        if match and any(match.groups()):
            seconds = sum(float(g) * unit for g, unit in zip(match.groups(), _UNITS.values()) if g)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{key}={text} is not a positive duration; write it like 90s, 5m, 1h30m or 01:30:00.")
    return seconds
