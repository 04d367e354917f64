"""Fine-tuning examples as flat arrays and back: how the task example cache stores them, without pickle.

An example is a dict of fields, each an integer, a float or a 1-D numeric array (``input_ids``, ``labels``,
``label``, ``score`` ...), the same fields in every example of a list. A list becomes, per field, one
int64 array of the integers, one float64 array of the floats, or the arrays concatenated with their
offsets; :func:`from_arrays` rebuilds equal examples (the same fields in the same order, the same
dtypes, Python ints and floats) and refuses arrays that do not add up to ``count`` examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INTS, FLOATS, ARRAYS = "ints", "floats", "arrays"  # the kinds of field
_SCALARS = {INTS: (int, np.int64), FLOATS: (float, np.float64)}  # a kind's Python type and stored dtype
_NUMERIC = "biuf"  # numpy dtype kinds an array field may have (bool, signed, unsigned, float)


class NotStorable(ValueError):
    """A list of examples that :func:`to_arrays` cannot store (says which field and why)."""


def _kind(name: str, values: list[Any]) -> str:
    """INTS, FLOATS or ARRAYS for the values of field ``name``; NotStorable when they are none of them."""
    first = values[0]
    if isinstance(first, np.ndarray):
        if first.ndim != 1 or first.dtype.kind not in _NUMERIC:
            raise NotStorable(f"field '{name}' holds a {first.ndim}-D array of {first.dtype}")
        for value in values:
            if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != first.dtype:
                raise NotStorable(f"field '{name}' holds arrays of different kinds ({first.dtype}, {value!r:.60})")
        return ARRAYS
    for kind, (python_type, _) in _SCALARS.items():  # exact types: a bool would come back as an int
        if type(first) is python_type:
            odd = next((value for value in values if type(value) is not python_type), None)
            if odd is None:
                return kind
            raise NotStorable(f"field '{name}' holds a {type(odd).__name__} among {python_type.__name__}s")
    raise NotStorable(f"field '{name}' holds a {type(first).__name__}")


def to_arrays(examples: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """``examples`` as named flat arrays, with the (field, kind) list that :func:`from_arrays` needs.

    Raises:
        NotStorable: examples with different fields, or a field that is neither integers nor 1-D
            numeric arrays of one dtype.
    """
    if not examples:
        return {}, []
    names = list(examples[0])
    for example in examples:
        if list(example) != names:
            raise NotStorable(f"examples have different fields ({', '.join(names)} and {', '.join(example)})")
    arrays: dict[str, np.ndarray] = {}
    fields = []
    for name in names:
        values = [example[name] for example in examples]
        kind = _kind(name, values)
        fields.append((name, kind))
        if kind in _SCALARS:
            try:
                arrays[f"{name}.{kind}"] = np.asarray(values, dtype=_SCALARS[kind][1])
            except OverflowError:
                raise NotStorable(f"field '{name}' holds an integer beyond 64 bits") from None
        else:
            lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
            arrays[f"{name}.values"] = np.concatenate(values)
            arrays[f"{name}.offsets"] = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
    return arrays, fields


def from_arrays(arrays: Any, fields: list[tuple[str, str]], count: int) -> list[dict[str, Any]]:
    """The ``count`` examples that :func:`to_arrays` stored as ``arrays`` (a mapping, e.g. an ``np.load`` file).

    Raises:
        ValueError: the arrays do not hold ``count`` examples of ``fields`` (a damaged file).
    """
    if count == 0:
        return []
    columns: list[list[Any]] = []
    for name, kind in fields:
        if kind in _SCALARS:
            scalars = arrays[f"{name}.{kind}"]
            if scalars.shape != (count,) or scalars.dtype != _SCALARS[kind][1]:
                found = scalars.shape[0] if scalars.ndim else 0
                raise ValueError(f"field '{name}': {found} {kind} ({scalars.dtype}) for {count} examples")
            columns.append(scalars.tolist())
        elif kind == ARRAYS:
            values, offsets = arrays[f"{name}.values"], arrays[f"{name}.offsets"]
            ends_ok = (
                offsets.shape == (count + 1,)
                and offsets.dtype == np.int64
                and offsets[0] == 0
                and offsets[-1] == len(values)
            )
            if values.ndim != 1 or not ends_ok or np.any(np.diff(offsets) < 0):
                raise ValueError(f"field '{name}': its offsets do not cut {len(values)} values into {count} examples")
            columns.append(np.split(values, offsets[1:-1]))
        else:
            raise ValueError(f"field '{name}' is of an unknown kind '{kind}'")
    names = [name for name, _ in fields]
    return [dict(zip(names, row)) for row in zip(*columns)]
