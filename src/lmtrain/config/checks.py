"""Range checks of config values: each schema checks its own fields with :func:`check_range`.

The schemas in :mod:`lmtrain.config` (and a user's own plug schemas) call :func:`check_range` from
their ``__post_init__``, so an out-of-range value fails whenever its dataclass is built;
:func:`lmtrain.commands.config_validation.check_config` turns that failure into a message naming the full key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable
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


class IgnoredKeyError(ConfigRangeError):
    """A key given a value that nothing would read: the chosen option (data source, objective) ignores it, or
    its schema has no such key.

    Attributes:
        why: the rest of the sentence after ``key=value`` (``is read only from your own text files ...``).
        advice: what to do instead (one sentence).
    """

    def __init__(self, field: str, value: Any, why: str, advice: str):
        super().__init__(field, "", value)
        self.why, self.advice = why, advice

    def __str__(self) -> str:
        return f"{self.field}={self.value} {self.why}"


def read_by(*options: str) -> dict[str, tuple[str, ...]]:
    """Field metadata: the options (data sources, methods) that read this key; a field without it is read by all."""
    return {"read_by": options}


def _default(spec: dataclasses.Field) -> Any:
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def unread_fields(owner: Any, option: str, given: Iterable[str] = ()) -> list[str]:
    """The fields of the dataclass ``owner`` that ``option`` does not read (see :func:`read_by`) yet someone asked
    for: a value other than the field's default, or a name in ``given`` (the keys typed on the command line)."""
    given = set(given)
    return [
        spec.name
        for spec in dataclasses.fields(owner)
        if option not in spec.metadata.get("read_by", (option,))
        and (spec.name in given or getattr(owner, spec.name) != _default(spec))
    ]


def unknown_key_error(schema: type, prefix: str, key: str, value: Any) -> IgnoredKeyError:
    """The error of ``key`` (under ``prefix``, e.g. ``trainer.``) given to a node of the dataclass ``schema``,
    which has no such key: only ``+key=...`` adds one, and nothing would read it."""
    close = difflib.get_close_matches(key, [f.name for f in dataclasses.fields(schema)], n=1)
    advice = f"Did you mean {prefix}{close[0]}? " if close else ""
    return IgnoredKeyError(
        f"{prefix}{key}",
        value,
        f"names no key of {prefix.rstrip('.') or 'the config'} ({schema.__name__}), so nothing would read it",
        f"{advice}Drop the key (a leading + adds a key the schema lacks).",
    )


def check_range(
    owner: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    reason: str = "",
) -> None:
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
    """The one-paragraph error of an out-of-range value (or an ignored key) of ``lmtrain <command>``'s config."""
    if isinstance(error, IgnoredKeyError):
        return UserError(f"invalid configuration for `lmtrain {command}`: {error}. {error.advice}")
    return UserError(
        f"invalid configuration for `lmtrain {command}`: {error}. Give a value in that range, "
        f"e.g. `lmtrain {command} {error.field}=...`; `lmtrain {command} --help` lists every key "
        "with its meaning."
    )
