"""Tokenized examples on disk: one `.npy` array per field, memory-mapped when read.

Sequence fields are stored padded to a fixed width as (N, T) arrays next to a (N,) `length`
array; scalar fields are (N,) arrays. Writing appends batch by batch and reading by index never
loads the whole file, so corpora larger than memory work the same way as small ones. A store is
written into a temporary directory and renamed into place, so an interrupted run never leaves
half a cache. Each store records a digest of its content (``meta.json``: ``content_sha256``), so
the ranks of a job can check cheaply that they read the same examples.

A store may also be sharded: sub-stores written independently (by several processes), and a
``meta.json`` index that lists them in order (:func:`index_shards`). It reads as their
concatenation, and its digest covers the shards' digests in that order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lmtrain.files.atomic import atomic_directory

LENGTH = "length"
CONTENT_DIGEST = "content_sha256"
SHARDS = "shards"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts`` (cache keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (cache keys change when the data changes, not when it is touched)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _NpyColumn:
    """An ``.npy`` file written row by row: rows go straight to disk, the header gets the count at the end.

    The header is written with room for any row count and rewritten in place by :meth:`close`,
    so a column of any size needs memory for one batch of rows only.
    """

    HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + the dict, padded with spaces

    def __init__(self, path: Path, dtype: npt.DTypeLike, width: int | None):
        self.path, self.dtype, self.width, self.rows = path, np.dtype(dtype), width, 0
        self.hash = hashlib.sha256()  # of the rows' bytes, as :func:`_column_digest` reads them back
        self.file = open(path, "wb")  # noqa: SIM115 -- the column stays open across appends; close() or abandon() ends it
        self.file.write(self._header())

    def _header(self) -> bytes:
        shape = (self.rows,) if self.width is None else (self.rows, self.width)
        descr = np.lib.format.dtype_to_descr(self.dtype)
        fields = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape}, }}"
        text = fields.ljust(self.HEADER_BYTES - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` (n,) or (n, width), already of this column's dtype and width."""
        data = np.ascontiguousarray(rows, dtype=self.dtype).tobytes()
        self.file.write(data)
        self.hash.update(data)
        self.rows += len(rows)

    def close(self) -> None:
        """Rewrite the header with the final row count and close the file."""
        self.file.seek(0)
        self.file.write(self._header())
        self.file.close()

    def abandon(self) -> None:
        """Close the file of a column that will be thrown away (a failing write is of no interest)."""
        with contextlib.suppress(OSError):
            self.file.close()


def _column_digest(path: Path) -> str:
    """SHA-256 of an ``.npy`` file's data (its header left out: a column's header changes as it grows)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(f)
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _store_digest(meta: dict[str, Any], columns: dict[str, str]) -> str:
    """The content digest of a store: its metadata and each column's data digest."""
    described = {k: v for k, v in meta.items() if k != CONTENT_DIGEST}
    return hashlib.sha256(json.dumps([described, columns], sort_keys=True).encode()).hexdigest()


class StoreWriter:
    """Append examples to a new store batch by batch; the store appears at ``path`` only when complete.

    Use as a context manager: on an exception nothing is left at ``path``.

    Args:
        path: the store directory (replaced if it exists).
        width: the longest example any batch may hold (sequences are padded to it on disk).
        meta: JSON metadata saved in ``meta.json``.
    """

    def __init__(self, path: Path, width: int, meta: dict[str, Any]):
        self.path, self.width, self.meta = Path(path), width, meta
        self.columns: dict[str, _NpyColumn] = {}
        self.fields: dict[str, list[str]] | None = None

    def __enter__(self) -> StoreWriter:
        self._atomic = atomic_directory(self.path)
        self.tmp = self._atomic.__enter__()
        self.columns[LENGTH] = _NpyColumn(self.tmp / f"{LENGTH}.npy", np.int32, None)
        return self

    def append(self, sequences: dict[str, list[np.ndarray]], scalars: dict[str, list[int]]) -> None:
        """Add a batch: field -> one 1-D array per example (one length per example), scalar field -> ints."""
        if self.fields is None:
            self.fields = {"sequences": list(sequences), "scalars": list(scalars)}
            for name, rows in sequences.items():
                dtype = rows[0].dtype if rows else np.int32
                self.columns[name] = _NpyColumn(self.tmp / f"{name}.npy", dtype, self.width)
            for name in scalars:
                self.columns[name] = _NpyColumn(self.tmp / f"{name}.npy", np.int64, None)
        first = next(iter(sequences.values()))
        lengths = np.asarray([len(x) for x in first], dtype=np.int32)
        if len(lengths) and lengths.max() > self.width:
            raise ValueError(f"an example of {lengths.max()} tokens does not fit a store of width {self.width}")
        self.columns[LENGTH].append(lengths)
        for name, rows in sequences.items():
            column = self.columns[name]
            array = np.zeros((len(rows), self.width), dtype=column.dtype)  # (n, width)
            for i, row in enumerate(rows):
                array[i, : len(row)] = row
            column.append(array)
        for name, values in scalars.items():
            self.columns[name].append(np.asarray(values, dtype=np.int64))

    def __exit__(self, *exc_info: Any) -> bool | None:
        try:
            if exc_info[0] is None:
                self._finish()
            else:
                for column in self.columns.values():
                    column.abandon()
        except BaseException as error:  # a full disk while finishing: the temporary folder still goes
            for column in self.columns.values():
                column.abandon()
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        return self._atomic.__exit__(*exc_info)

    def _finish(self) -> None:
        """Close the columns and write ``meta.json`` with the row count and the content digest."""
        for column in self.columns.values():
            column.close()
        fields = self.fields or {"sequences": [], "scalars": []}
        meta = {**self.meta, "fields": fields, "n": self.columns[LENGTH].rows}
        meta[CONTENT_DIGEST] = _store_digest(meta, {n: c.hash.hexdigest() for n, c in self.columns.items()})
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2))


def write_store(
    path: Path, sequences: dict[str, list[np.ndarray]], scalars: dict[str, list[int]], meta: dict[str, Any]
) -> None:
    """Write examples that are all in memory to ``path`` atomically (see :class:`StoreWriter`).

    Args:
        path: the store directory (replaced if it exists).
        sequences: field -> one 1-D array per example (all fields of an example have one length).
        scalars: field -> one int per example.
        meta: JSON metadata saved as ``meta.json``.
    """
    first = next(iter(sequences.values()))
    with StoreWriter(path, max((len(x) for x in first), default=0), meta) as writer:
        writer.append(sequences, scalars)


def index_shards(path: Path, shards: list[str], meta: dict[str, Any]) -> None:
    """Write the ``meta.json`` index of a sharded store: the complete stores ``path/<shard>``, in order.

    Args:
        path: the store directory, holding the shards.
        shards: the shards' directory names, in the order their examples are read (at least one).
        meta: JSON metadata saved in the index, as in every shard.
    """
    if not shards:
        raise ValueError(f"the sharded store {path} needs at least one shard")
    listed, fields = [], None
    for name in shards:
        shard = json.loads((path / name / "meta.json").read_text())
        if fields is not None and shard["fields"] != fields:
            raise ValueError(f"shard {name} of {path} holds the fields {shard['fields']}, not {fields}")
        fields = shard["fields"]
        listed.append({"name": name, "n": shard["n"], CONTENT_DIGEST: shard[CONTENT_DIGEST]})
    index = {**meta, "fields": fields, "n": sum(shard["n"] for shard in listed), SHARDS: listed}
    index[CONTENT_DIGEST] = _store_digest(index, {})  # the shards' digests are in the index itself
    (path / "meta.json").write_text(json.dumps(index, indent=2))


class _Columns:
    """The arrays of one store directory (a whole store, or one shard of a sharded store)."""

    def __init__(self, path: Path, fields: dict[str, list[str]], in_memory: bool):
        self.lengths = np.load(path / f"{LENGTH}.npy")
        mode: Literal["r"] | None = None if in_memory else "r"
        self.sequences = {n: np.load(path / f"{n}.npy", mmap_mode=mode) for n in fields["sequences"]}
        self.scalars = {n: np.load(path / f"{n}.npy") for n in fields["scalars"]}

    def example(self, index: int) -> dict[str, np.ndarray | int]:
        """Example ``index``: sequence fields cut to its length, scalar fields as ints."""
        n = int(self.lengths[index])
        example: dict[str, np.ndarray | int] = {k: np.array(v[index, :n]) for k, v in self.sequences.items()}
        example.update({k: int(v[index]) for k, v in self.scalars.items()})
        return example


class ExampleStore:
    """Read-only access to a store written by :func:`write_store` (or :func:`index_shards`).

    Args:
        path: the store directory.
        in_memory: read the sequence arrays into memory instead of memory-mapping them (the
            batches are the same either way; memory mapping lets corpora exceed RAM).

    Attributes:
        lengths: (N,) tokens of each example, of all shards.
        shards: the arrays of each shard (one for a store that is not sharded), in reading order.
    """

    def __init__(self, path: str | Path, in_memory: bool = False):
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        fields = self.meta["fields"]
        if SHARDS in self.meta:
            self.shards = [_Columns(self.path / s["name"], fields, in_memory) for s in self.meta[SHARDS]]
        else:
            self.shards = [_Columns(self.path, fields, in_memory)]
        self.lengths = np.concatenate([shard.lengths for shard in self.shards])
        self._ends = np.cumsum([len(shard.lengths) for shard in self.shards])  # (shards,) end of each

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict[str, np.ndarray | int]:
        """Example ``index``: sequence fields cut to its length, scalar fields as ints."""
        index = range(len(self))[index]  # negative indices count from the end; out of range raises
        shard = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[shard - 1]) if shard else 0
        return self.shards[shard].example(index - start)

    def sequence_values(self, field: str, indices: Sequence[int]) -> np.ndarray | None:
        """The ``field`` tokens of examples ``indices`` (each cut to its length) one after another, read a shard
        at a time instead of example by example; None when ``field`` is not a sequence field of the store."""
        if field not in self.meta["fields"]["sequences"]:
            return None
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"example indices {wanted.min()}..{wanted.max()} of a store of {len(self)}")
        shard_of = np.searchsorted(self._ends, wanted, side="right")
        columns = [shard.sequences[field] for shard in self.shards]
        rows = np.zeros((len(wanted), max(c.shape[1] for c in columns)), dtype=np.result_type(*columns))
        for shard, column in enumerate(columns):
            picked = np.flatnonzero(shard_of == shard)
            start = int(self._ends[shard - 1]) if shard else 0
            rows[picked, : column.shape[1]] = column[wanted[picked] - start]
        return rows[np.arange(rows.shape[1]) < self.lengths[wanted][:, None]]  # row by row: the examples in order

    def content_digest(self) -> str:
        """SHA-256 of the examples: recorded when the store was written, computed for a store of an older version."""
        if CONTENT_DIGEST in self.meta:
            return self.meta[CONTENT_DIGEST]
        names = [LENGTH, *self.meta["fields"]["sequences"], *self.meta["fields"]["scalars"]]
        return _store_digest(self.meta, {n: _column_digest(self.path / f"{n}.npy") for n in names})

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether a complete store is at ``path``."""
        return (Path(path) / "meta.json").exists()
