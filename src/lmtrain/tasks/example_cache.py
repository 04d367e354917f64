"""A fine-tuning task's encoded examples, kept in the data cache and keyed by a hash of everything that made them.

A task's examples come from its read data (:meth:`Task.example_inputs`), its labels and options, the
``data`` settings, the tokenizer's ``tokenizer.json`` and ``data.max_seq_len``; the key hashes all of
them, with this module's format version, lmtrain's and `tokenizers`' versions, and the source of a task
plug's own package: a change to any of them gives a new entry, never a stale one. An entry is written
whole into a temporary folder and renamed into place (:func:`lmtrain.files.atomic.atomic_directory`)
under a lock (the folder a killed write left is removed by the next writer), holds numpy arrays only
(read with ``allow_pickle=False``) and the SHA-256 of each file: a damaged entry is said and prepared
again. What the encoding logged (a long sentence split into windows, texts cut) is kept with it and
said again when a later run reads the entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers

import lmtrain
from lmtrain.data.cache_lock import cache_lock, remove_leftovers
from lmtrain.data.example_arrays import NotStorable, from_arrays, to_arrays
from lmtrain.data.store import file_digest, fingerprint
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.files.atomic import atomic_directory, write_text
from lmtrain.files.cache_home import open_cache_folder
from lmtrain.tasks.base import TaskDataset

FORMAT_VERSION = 1  # raise it when a built-in task's encoding or this entry layout changes
MAX_SOURCE_FILES = 2000  # of a task plug's package, hashed into the key
FOLDER = "task-examples"
ENTRY_FILE = "entry.json"
SPLITS = ("train", "eval")

log = logging.getLogger(__name__)


def _settings(config: Any) -> Any:
    """A config object as plain JSON-able values (dataclasses as dicts)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type) else config


def inputs_digest(inputs: Any) -> str:
    """SHA-256 of ``inputs`` (JSON-able: lists, strings, numbers) in a canonical JSON form."""
    text = json.dumps(inputs, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _source_files(top: str) -> list[Path]:
    """The Python files of the top-level package or module ``top`` (at most :data:`MAX_SOURCE_FILES`)."""
    module = sys.modules.get(top)
    if module is None:
        return []
    folders = [Path(p) for p in getattr(module, "__path__", [])]  # a package (namespace packages too)
    if folders:
        return sorted(f for folder in folders for f in folder.rglob("*.py"))[:MAX_SOURCE_FILES]
    file = getattr(module, "__file__", None)
    return [Path(file)] if file else []


def plug_source_digest(cls: type) -> str:
    """SHA-256 of the source of the packages that define ``cls`` and its bases outside lmtrain: a task of your own
    encodes again when its code changes (lmtrain's own tasks are covered by :data:`FORMAT_VERSION`)."""
    digest = hashlib.sha256()
    tops = dict.fromkeys(k.__module__.split(".")[0] for k in cls.__mro__)
    for top in tops:
        if top in ("lmtrain", "builtins"):
            continue
        for file in _source_files(top):
            digest.update(f"{top}:{file.name}:".encode())
            with contextlib.suppress(OSError):  # a file gone since the import: the others still key it
                digest.update(file.read_bytes())
    return digest.hexdigest()


def entry_key(task: Any, digest: str, tokenizer: TextTokenizer, max_seq_len: int) -> str:
    """The cache key of ``task``'s examples of the inputs whose :func:`inputs_digest` is ``digest``."""
    data = {k: v for k, v in _settings(task.cfg).items() if k != "cache_dir"}
    cls = type(task)
    return fingerprint(
        FOLDER,
        FORMAT_VERSION,
        lmtrain.__version__,
        tokenizers.__version__,
        f"{cls.__module__}.{cls.__qualname__}",
        plug_source_digest(cls),
        list(task.labels),
        _settings(task.options),
        data,
        hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest(),
        tokenizer.roles,
        max_seq_len,
        digest,
    )


@contextlib.contextmanager
def _logged_records() -> Iterator[list[list[Any]]]:
    """Collect (logger, level, message) of what is logged at INFO or above while the block runs (a task of your
    own may log under its own logger's name)."""
    records: list[list[Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append([record.name, record.levelno, record.getMessage()])

    handler, root = Keep(logging.INFO), logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)


def _check_members(path: Path) -> None:
    """Refuse an ``.npz`` whose arrays could make ``np.load`` allocate more than the file holds: a compressed member
    (np.savez stores them), or an array header that claims more bytes than its member has.

    Raises:
        ValueError: naming the member.
    """
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.compress_type != zipfile.ZIP_STORED:
                raise ValueError(
                    f"{path.name} holds a compressed member ({member.filename}), which lmtrain does not write"
                )
            with archive.open(member) as file:
                version = np.lib.format.read_magic(file)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(file)
            if dtype.hasobject or int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > member.file_size:
                raise ValueError(f"{path.name}: {member.filename} claims {shape} of {dtype}, more than it holds")


def _read_entry(root: Path) -> tuple[list[list[dict[str, Any]]], list[list[Any]]]:
    """The train and held-out examples of the entry ``root``, and its log records.

    Raises:
        ValueError, OSError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile: a damaged entry
            (the message says what is wrong).
    """
    meta = json.loads((root / ENTRY_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"format {meta.get('format')!r}, not {FORMAT_VERSION}")
    splits = []
    for split in SPLITS:
        path = root / f"{split}.npz"
        if file_digest(path) != meta["sha256"][split]:
            raise ValueError(f"{path.name} is not the file that was written (its SHA-256 differs)")
        _check_members(path)
        with np.load(path, allow_pickle=False) as arrays:
            fields = [(str(name), str(kind)) for name, kind in meta["fields"][split]]
            splits.append(from_arrays(arrays, fields, int(meta["counts"][split])))
    records = [list(r) for r in meta["log"]]
    if not all(len(r) == 3 and [type(v) for v in r] == [str, int, str] for r in records):
        raise ValueError("its log records are not (logger, level, message) triples")
    return splits, records


def _load(root: Path, say_damage: bool) -> tuple[list[list[dict[str, Any]]], list[list[Any]]] | None:
    """:func:`_read_entry`, or None when there is no entry or a damaged one (said if ``say_damage``)."""
    if not (root / ENTRY_FILE).exists():
        return None
    try:
        return _read_entry(root)
    except (ValueError, OSError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile) as error:
        if say_damage:
            log.warning("the cached examples %s are damaged (%s); encoding the data again", root, error)
        return None


def _stored(task: Any, train: Any, held_out: Any) -> list[tuple[dict[str, np.ndarray], list[tuple[str, str]]]] | None:
    """The arrays and fields of the task's train and held-out examples; None when the datasets are not plain
    :class:`TaskDataset` s (a task's own kind of dataset is encoded at every run).

    Raises:
        UserError: a field the cache cannot store, in a task that promised storable examples.
    """
    if type(train) is not TaskDataset or type(held_out) is not TaskDataset:
        return None
    try:
        return [to_arrays(dataset.examples) for dataset in (train, held_out)]
    except NotStorable as error:
        raise UserError(
            f"task={task.name}: its examples cannot be kept in the data cache: {error}; the cache keeps integers, "
            "floats and 1-D numeric arrays. Make the task's example_inputs() return None (its examples are then "
            "encoded at every run)."
        ) from None


def _write_entry(
    root: Path,
    stored: list[tuple[dict[str, np.ndarray], list[tuple[str, str]]]],
    counts: list[int],
    records: list[list[Any]],
) -> None:
    """Write an entry of the train and held-out ``stored`` arrays and ``records``; a failure is said, not raised."""
    try:
        with atomic_directory(root) as tmp:
            sha = {}
            for split, (arrays, _) in zip(SPLITS, stored):
                named: dict[str, Any] = arrays  # (numpy's stubs read a keyword as savez's own allow_pickle)
                np.savez(tmp / f"{split}.npz", **named)
                sha[split] = file_digest(tmp / f"{split}.npz")
            meta = {
                "format": FORMAT_VERSION,
                "fields": {split: fields for split, (_, fields) in zip(SPLITS, stored)},
                "counts": dict(zip(SPLITS, counts)),
                "sha256": sha,
                "log": records,
            }
            write_text(tmp / ENTRY_FILE, json.dumps(meta, indent=1))
    except OSError as error:
        log.warning(
            "could not keep the encoded examples in %s (%s); the run goes on, and the next one encodes them again",
            root,
            " ".join(str(error).split()),
        )


def _encode(task: Any, tokenizer: TextTokenizer, max_seq_len: int) -> tuple[Any, Any, list[list[Any]]]:
    """``task.datasets`` and what was logged while it ran."""
    with _logged_records() as records:
        train, held_out = task.datasets(tokenizer, max_seq_len)
    return train, held_out, records


def _cache_folder(configured: str | None) -> Path | None:
    """The data cache folder; None, said, when the default one cannot be made (a folder given is the user's ask:
    its error is raised)."""
    try:
        return open_cache_folder(configured)
    except UserError as error:
        if configured is not None:
            raise
        log.warning("%s The examples are encoded without it.", error)
        return None


def _locked(stack: contextlib.ExitStack, path: Path) -> bool:
    """Take the entry's lock ``path`` into ``stack``; False, said, when it cannot be made (a file in the way)."""
    try:
        stack.enter_context(cache_lock(path))
    except OSError as error:
        log.warning("cannot lock %s (%s); the examples are encoded without the cache", path, error)
        return False
    return True


def cached_datasets(task: Any, tokenizer: TextTokenizer, max_seq_len: int) -> tuple[Any, Any]:
    """``task.datasets(tokenizer, max_seq_len)``, from the data cache when an earlier run encoded the same.

    A task whose :meth:`Task.example_inputs` is None, or a tokenizer that samples its pieces (BPE dropout: every
    run draws its own), encodes at every run.

    Raises:
        UserError: ``data.cache_dir`` given for such a task (it would be ignored); what the task raises.
    """
    inputs = task.example_inputs()
    sampling = bool(getattr(tokenizer.tokenizer.model, "dropout", None))
    if inputs is None or sampling:
        if getattr(task.cfg, "cache_dir", None) is not None:
            why = "its tokenizer samples its pieces (BPE dropout)" if sampling else "it keeps no examples in the cache"
            raise UserError(
                f"data.cache_dir={task.cfg.cache_dir}: task={task.name} encodes its examples at every run ({why}), so "
                "the key would be ignored; drop it."
            )
        return task.datasets(tokenizer, max_seq_len)
    try:
        digest = inputs_digest(inputs)
    except (TypeError, ValueError) as error:  # json's words for a value it cannot write (a set, a numpy scalar)
        raise UserError(
            f"task={task.name}: example_inputs() returned what JSON cannot hold ({error}); return lists, strings, "
            "numbers, booleans and None (or None alone: the examples are then encoded at every run)."
        ) from None
    key = entry_key(task, digest, tokenizer, max_seq_len)
    folder = _cache_folder(task.cfg.cache_dir)
    root = folder / FOLDER / key if folder is not None else None
    found = _load(root, say_damage=False) if root is not None else None
    if found is None:
        with contextlib.ExitStack() as stack:
            if root is not None and not _locked(stack, root.parent / f"{key}.lock"):
                root = None
            found = _load(root, say_damage=True) if root is not None else None
            if found is None:
                if root is not None:
                    remove_leftovers(root)  # of a run killed while it wrote this entry
                train, held_out, records = _encode(task, tokenizer, max_seq_len)
                stored = _stored(task, train, held_out)
                if root is not None and stored is not None:
                    _write_entry(root, stored, [len(train), len(held_out)], records)
                return train, held_out
    (train_examples, eval_examples), records = found
    for name, level, message in records:
        logging.getLogger(name).log(level, "%s", message)
    log.info("using cached examples %s", root)
    return TaskDataset(train_examples), TaskDataset(eval_examples)
