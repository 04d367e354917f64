"""Tokenized examples on disk: one `.npy` array per field, memory-mapped when read.

Sequence fields are stored padded to the longest example as (N, T) arrays next to a (N,)
`length` array; scalar fields are (N,) arrays. Reading by index never loads the whole file,
so corpora larger than memory work the same way as small ones. A store is written into a
temporary directory and renamed into place, so an interrupted run never leaves half a cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from lmtrain.atomic import atomic_directory

LENGTH = "length"


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


def write_store(path: Path, sequences: dict[str, list[np.ndarray]], scalars: dict[str, list[int]],
                meta: dict[str, Any]) -> None:
    """Write examples to ``path`` atomically.

    Args:
        path: the store directory (must not exist yet; replaced if it does).
        sequences: field -> one 1-D array per example (all fields of an example have one length).
        scalars: field -> one int per example.
        meta: JSON metadata saved as ``meta.json``.
    """
    with atomic_directory(path) as tmp:
        first = next(iter(sequences.values()))
        lengths = np.asarray([len(x) for x in first], dtype=np.int32)
        width = int(lengths.max()) if len(lengths) else 0
        np.save(tmp / f"{LENGTH}.npy", lengths)
        for name, rows in sequences.items():
            dtype = rows[0].dtype if rows else np.int32
            array = np.zeros((len(rows), width), dtype=dtype)
            for i, row in enumerate(rows):
                array[i, : len(row)] = row
            np.save(tmp / f"{name}.npy", array)
        for name, values in scalars.items():
            np.save(tmp / f"{name}.npy", np.asarray(values, dtype=np.int64))
        fields = {"sequences": list(sequences), "scalars": list(scalars)}
        (tmp / "meta.json").write_text(json.dumps({**meta, "fields": fields, "n": len(lengths)}, indent=2))


class ExampleStore:
    """Read-only access to a store written by :func:`write_store`.

    Args:
        path: the store directory.
        in_memory: read the sequence arrays into memory instead of memory-mapping them (the
            batches are the same either way; memory mapping lets corpora exceed RAM).
    """

    def __init__(self, path: str | Path, in_memory: bool = False):
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.lengths = np.load(self.path / f"{LENGTH}.npy")
        mode = None if in_memory else "r"
        self.sequences = {n: np.load(self.path / f"{n}.npy", mmap_mode=mode) for n in self.meta["fields"]["sequences"]}
        self.scalars = {n: np.load(self.path / f"{n}.npy") for n in self.meta["fields"]["scalars"]}

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict[str, np.ndarray | int]:
        """Example ``index``: sequence fields cut to its length, scalar fields as ints."""
        n = int(self.lengths[index])
        example: dict[str, np.ndarray | int] = {k: np.array(v[index, :n]) for k, v in self.sequences.items()}
        example.update({k: int(v[index]) for k, v in self.scalars.items()})
        return example

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether a complete store is at ``path``."""
        return (Path(path) / "meta.json").exists()
