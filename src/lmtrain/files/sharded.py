"""Read a sharded checkpoint (``torch.distributed.checkpoint``, DCP) without trusting its files.

A sharded checkpoint keeps its model and optimizer tensors in a folder of its own: one
``__<rank>_0.distcp`` file per rank that wrote it, and ``.metadata``, which maps every tensor's
chunks to byte ranges of those files. DCP's own reader unpickles ``.metadata`` with ``pickle.load``
and every non-tensor value (an optimizer's learning rate, say) with ``torch.load(weights_only=False)``:
a crafted checkpoint could run code through either. Here ``.metadata`` goes through an unpickler that
builds only DCP's metadata classes and torch's sizes, dtypes and layouts, non-tensor values through
``weights_only=True``, and every file the metadata names must be a plain file of the folder. So a
checkpoint from anywhere is read as data, never as code, like :mod:`lmtrain.files.tensors` reads the rest.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lmtrain.errors import UserError
from lmtrain.files.tensors import unreadable

METADATA = ".metadata"
_METADATA_LIMIT = 1 << 30  # bytes; the metadata of billions of parameters sharded over thousands of ranks fits

# (module, name) of every global a DCP .metadata pickle names (its dataclasses, torch.Size, layouts, paths)
_METADATA_GLOBALS = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "TensorProperties",
        "StorageMeta",
        "MetadataIndex",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"Path", "PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"},
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle names something DCP's metadata never holds (a function that could run code)."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _METADATA_GLOBALS.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise _ForbiddenGlobal(f"{module}.{name}")


def _refused(path: Path, what: str) -> UserError:
    return UserError(
        f"{path} names {what}, which the metadata of a sharded checkpoint never holds; refusing to "
        "unpickle it, since loading it could run arbitrary code. Use a checkpoint written by lmtrain "
        "(an older checkpoints/step-N), or write this one again."
    )


def read_sharded_metadata(folder: Path) -> Any:
    """The ``.metadata`` of the sharded tensors in ``folder``, built from plain data only and checked in form.

    Raises:
        UserError: the file is missing, larger than any metadata, truncated or not DCP metadata (a list
            where a dict belongs, a negative size, say), or it names any other class or function
            (refused without running it).
    """
    from torch.distributed.checkpoint.metadata import Metadata

    path = folder / METADATA
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size > _METADATA_LIMIT:
                raise _not_metadata(path, f"it is over {_METADATA_LIMIT >> 20} MiB")
            data = file.read()
        # a pickle declaring an object larger than the file fails below (EOFError, MemoryError), caught
        metadata = _MetadataUnpickler(io.BytesIO(data)).load()
    except _ForbiddenGlobal as error:
        raise _refused(path, str(error)) from None
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        AttributeError,
        TypeError,
        ValueError,
        IndexError,
        KeyError,
        RuntimeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as error:
        raise unreadable(path, error) from None
    if not isinstance(metadata, Metadata):
        raise _refused(path, f"a {type(metadata).__name__} instead of DCP metadata")
    problem = _form_problem(metadata)
    if problem:
        raise _not_metadata(path, problem)
    return metadata


def _not_metadata(path: Path, problem: str) -> UserError:
    return UserError(
        f"{path} is not the metadata of a sharded checkpoint ({problem}); it is damaged or was not "
        "written by torch.distributed.checkpoint. Use another checkpoint (an older checkpoints/step-N), "
        "or write this one again."
    )


def _is_shape(value: Any, rank: int | None = None) -> bool:
    return (
        isinstance(value, tuple)
        and (rank is None or len(value) == rank)
        and all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in value)
    )


def _tensor_problem(entry: Any) -> str | None:
    """Why a tensor's entry of the metadata is malformed (None if its size, dtype and chunks are plain)."""
    from torch.distributed.checkpoint.metadata import ChunkStorageMetadata, TensorProperties

    if not _is_shape(entry.size):
        return f"has the size {entry.size!r}, not a list of counts"
    if not isinstance(entry.properties, TensorProperties) or not isinstance(entry.properties.dtype, torch.dtype):
        return "has no dtype"
    if not isinstance(entry.chunks, list) or not all(
        isinstance(chunk, ChunkStorageMetadata)
        and _is_shape(chunk.offsets, len(entry.size))
        and _is_shape(chunk.sizes, len(entry.size))
        and all(o + n <= d for o, n, d in zip(chunk.offsets, chunk.sizes, entry.size))
        for chunk in entry.chunks
    ):
        return "has chunks that are not a list of parts within its size"
    return None


def _form_problem(metadata: Any) -> str | None:
    """Why ``metadata`` is not in DCP's form (None if its tables are dicts of the right entries)."""
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, MetadataIndex, TensorStorageMetadata

    for table in ("state_dict_metadata", "storage_data"):
        if not isinstance(getattr(metadata, table, None), dict):
            return f"its {table} is a {type(getattr(metadata, table, None)).__name__}, not a dict"
    if not all(
        isinstance(index, MetadataIndex) and isinstance(info, _StorageInfo)
        for index, info in metadata.storage_data.items()
    ):
        return "its storage_data holds entries other than file ranges"
    for name, entry in metadata.state_dict_metadata.items():
        if not isinstance(name, str):
            return f"its state_dict_metadata names {name!r}, not a string"
        if isinstance(entry, BytesStorageMetadata):
            continue
        problem = (
            _tensor_problem(entry)
            if isinstance(entry, TensorStorageMetadata)
            else f"is a {type(entry).__name__}, not a tensor or value entry"
        )
        if problem:
            return f"{name} {problem}"
    return None


def _storage_problem(folder: Path, metadata: Any) -> str | None:
    """Why the files ``metadata`` points into are not all there (None if every byte range fits its file)."""
    sizes: dict[str, int] = {}
    for info in metadata.storage_data.values():
        name = getattr(info, "relative_path", None)
        if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            return f"{METADATA} names {name!r}, which is not a file of {folder}"
        if name not in sizes:
            sizes[name] = (folder / name).stat().st_size if (folder / name).is_file() else -1
        if sizes[name] < 0:
            return f"{name} is missing"
        offset, length = getattr(info, "offset", None), getattr(info, "length", None)
        if not (isinstance(offset, int) and offset >= 0 and isinstance(length, int) and length >= 0):
            return f"{METADATA} gives {name} a byte range that is not two counts"
        if offset + length > sizes[name]:
            return f"{name} is truncated ({sizes[name]} bytes, the metadata needs {offset + length})"
    return _size_problem(metadata, sum(sizes.values()))


def _size_problem(metadata: Any, stored: int) -> str | None:
    """Why a tensor the metadata describes cannot be in the ``stored`` bytes of the shard files (None if all can).

    Shards hold each tensor's bytes uncompressed, so a larger size is a damaged or crafted metadata,
    refused before a tensor of that size is allocated.
    """
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    for name, entry in metadata.state_dict_metadata.items():
        if isinstance(entry, TensorStorageMetadata):
            needed = math.prod(entry.size) * entry.properties.dtype.itemsize
            if needed > stored:
                return (
                    f"{METADATA} gives {name} the size {list(entry.size)} ({needed} bytes of "
                    f"{entry.properties.dtype}), more than the {stored} bytes of all its shard files"
                )
    return None


def sharded_problem(folder: Path) -> str | None:
    """Why the sharded tensors in ``folder`` cannot be read (a missing, truncated or refused file), or None.

    Cheap: reads the metadata and compares each shard file's size with the byte ranges it must hold.
    """
    try:
        metadata = read_sharded_metadata(folder)
    except UserError as error:
        return str(error)
    return _storage_problem(folder, metadata)


def _intact_metadata(folder: Path) -> Any:
    """The metadata of ``folder``, refused unless every shard file it names is there, whole, and can hold its sizes."""
    metadata = read_sharded_metadata(folder)
    problem = _storage_problem(folder, metadata)
    if problem:
        raise UserError(f"{folder} cannot be read ({problem}). Use another checkpoint (an older checkpoints/step-N).")
    return metadata


@functools.cache
def _safe_reading() -> tuple[type, type]:
    """DCP's file reader and load planner, made safe (built on first use: DCP takes a second to import)."""
    from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
    from torch.distributed.checkpoint._traverse import set_element  # what DefaultLoadPlanner.load_bytes uses
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(FileSystemReader):
        """DCP's file reader with :func:`read_sharded_metadata` in place of ``pickle.load``."""

        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            metadata = read_sharded_metadata(Path(self.path))
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class SafeLoadPlanner(DefaultLoadPlanner):
        """DCP's load planner, reading non-tensor values with ``weights_only=True`` instead of unpickling them."""

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            try:
                loaded = torch.load(value, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                raise _ForbiddenGlobal(f"a Python object at {read_item.dest_index.fqn}") from None
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
            else:
                self.state_dict[read_item.dest_index.fqn] = loaded

    return SafeReader, SafeLoadPlanner


@contextlib.contextmanager
def single_process_quietly(no_dist: bool) -> Iterator[None]:
    """Silence DCP's warning that it works in one process (``no_dist``), which is meant here."""
    with warnings.catch_warnings():
        if no_dist:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def load_sharded(folder: Path, state_dict: dict[str, Any], process_group: Any = None, no_dist: bool = False) -> None:
    """Fill ``state_dict`` in place from the sharded tensors in ``folder`` (DCP reshards as needed).

    Args:
        folder: the folder DCP wrote.
        state_dict: nested dict of tensors (plain or DTensor) to load into, and values to replace.
        process_group: the group every rank calls this with (None: the default group).
        no_dist: read in this process alone, whatever process group exists.
    Raises:
        UserError: a file is missing, damaged, refused, or does not fit ``state_dict``.
    """
    from torch.distributed.checkpoint import CheckpointException, load

    _intact_metadata(folder)
    reader, planner = _safe_reading()
    try:
        with single_process_quietly(no_dist):
            load(
                state_dict,
                storage_reader=reader(folder),
                planner=planner(),
                process_group=process_group,
                no_dist=no_dist,
            )
    except CheckpointException as error:  # DCP wraps every rank's error; name the first
        cause = next(iter(error.failures.values()))[0]
        if isinstance(cause, _ForbiddenGlobal):
            raise _refused(folder, str(cause)) from None
        reason = " ".join(str(cause).split())[:300]
        raise UserError(
            f"{folder} does not fit this model and optimizer ({type(cause).__name__}: {reason}); it was "
            "written by a run of another configuration. Resume with the settings it was trained with, "
            "or use another checkpoint."
        ) from None


def read_sharded_tensors(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The full tensors saved under ``prefix`` (``model``: the weights), consolidated in this process alone.

    Only those tensors are read (not the optimizer's, say), each once, whatever number of ranks wrote them.
    """
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = _intact_metadata(folder)  # sizes checked against the files before anything is allocated
    start = prefix + "."
    tensors = {
        key[len(start) :]: torch.empty(entry.size, dtype=entry.properties.dtype)
        for key, entry in metadata.state_dict_metadata.items()
        if key.startswith(start) and isinstance(entry, TensorStorageMetadata)
    }
    load_sharded(folder, {prefix: tensors}, no_dist=True)
    return tensors
