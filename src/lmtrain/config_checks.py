"""Range checks of config values: each schema checks its own fields with :func:`check_range`.

The schemas in :mod:`lmtrain.config` (and a user's own plug schemas) call :func:`check_range` from
their ``__post_init__``, so an out-of-range value fails whenever its dataclass is built;
:func:`lmtrain.config_validation.check_config` turns that failure into a message naming the full key.
"""

from __future__ import annotations

import math
from typing import Any

from lmtrain.errors import UserError



class ConfigRangeError(ValueError):
    """A config value outside its allowed range.

    Attributes:
        field: the key within its group (``batch_size``), or a dotted key for cross-group checks.
        allowed: the allowed range in words (``>= 1``, ``in [0, 1)``).
        value: the value given.
        reason: why that range, or "" (shown after the range).
    """

    def __init__(self, field: str, allowed: str, value: Any, reason: str = ""):
        super().__init__(field, allowed, value, reason)
        self.field, self.allowed, self.value, self.reason = field, allowed, value, reason

    def __str__(self) -> str:  # built when shown: check_config prefixes the field with its group
        return f"{self.field}={self.value}: must be {self.allowed}" + (f" ({self.reason})" if self.reason else "")


def check_range(owner: Any, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, reason: str = "") -> None:
    """Raise ConfigRangeError unless ``owner.<name>`` lies in the range; None means unset and passes.

    Args:
        owner: the dataclass instance.
        name: its field.
        low, high: the bounds (None = unbounded on that side).
        low_open, high_open: exclude the bound itself.
        reason: why the range is what it is, for the message.
    """
    value = getattr(owner, name)
    if value is None or isinstance(value, (str, bool)):  # unset, or a string the command interprets
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    if all(_within(v, low, high, low_open, high_open) for v in values):
        return
    raise ConfigRangeError(name, _describe(low, high, low_open, high_open), value, reason)


def _within(value: Any, low, high, low_open: bool, high_open: bool) -> bool:
    if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def _describe(low, high, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def range_error(error: ConfigRangeError, command: str) -> UserError:
    """The one-paragraph error of an out-of-range value of ``lmtrain <command>``'s config."""
    return UserError(f"invalid configuration for `lmtrain {command}`: {error}. Give a value in that range, "
                     f"e.g. `lmtrain {command} {error.field}=...`; `lmtrain {command} --help` lists every key "
                     "with its meaning.")
