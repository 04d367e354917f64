"""A run folder's small files (``summary.json``, ``.hydra/*.yaml``, ``model.json``) read as data, defensively.

Run folders are shared and downloaded like any data, so each of their files may be missing,
damaged or crafted. These readers open regular files only (a FIFO would hang the reader, a
device such as ``/dev/zero`` would never end), read a bounded number of bytes, decode UTF-8, parse
with the JSON parser or YAML's safe loader (which builds plain data, never objects) and check the
type of the document. Every problem comes back as :class:`UnreadableFile` with a few words for
the run's row in ``lmtrain runs``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import yaml

MAX_DOCUMENT_BYTES = 64 << 20  # a summary with a confusion matrix of a thousand classes is a few MB
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}


class UnreadableFile(Exception):
    """A file of a run folder that exists but cannot be read as what it should be (``reason`` says why)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading in binary mode if it is a regular file (links to one are followed).

    Raises:
        OSError: it does not exist or cannot be opened; ``IsADirectoryError`` also stands for a
            FIFO, socket or device, which are opened without blocking and refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_at_most(f: BinaryIO, limit: int, chunk: int = 1 << 16) -> bytes:
    """Up to ``limit`` + 1 bytes of ``f`` (one more than allowed tells a file that is too large), read in
    chunks so that memory follows the file, not the limit."""
    parts, size = [], 0
    while size <= limit:
        part = f.read(min(chunk, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _read_text(path: Path, name: str, limit: int) -> str:
    try:
        with open_regular(path) as f:
            data = read_at_most(f, limit)
    except OSError as error:
        raise UnreadableFile(f"{name} cannot be read ({error.strerror or type(error).__name__})") from None
    if len(data) > limit:
        raise UnreadableFile(f"{name} is larger than {limit >> 20} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableFile(f"{name} is not UTF-8 text (byte {error.start})") from None


def _parse(text: str, name: str, kind: str) -> Any:
    try:
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise UnreadableFile(f"{name} is not valid JSON (line {error.lineno})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UnreadableFile(f"{name} is not valid YAML{where}") from None
    except (RecursionError, ValueError):  # nested thousands deep, or a number too long to convert
        raise UnreadableFile(f"{name} is nested too deeply or holds a number too large to read") from None


def read_document(
    run_dir: Path, relative: str, expected: type, kind: str = "json", limit: int = MAX_DOCUMENT_BYTES
) -> Any:
    """The parsed content of ``run_dir/relative``, or None when the file does not exist.

    Args:
        run_dir: the run folder.
        relative: the file inside it (``summary.json``, ``.hydra/overrides.yaml``), named in reasons.
        expected: the type the document must have (``dict`` or ``list``); an empty YAML file reads
            as an empty one.
        kind: ``json`` or ``yaml``.
        limit: the most bytes read.
    Raises:
        UnreadableFile: the file exists but is not a regular file, is too large, not UTF-8, does
            not parse, or holds another type than ``expected``.
    """
    path = run_dir / relative
    if not os.path.lexists(path):
        return None
    value = _parse(_read_text(path, relative, limit), relative, kind)
    if value is None and kind == "yaml":
        return expected()
    if not isinstance(value, expected):
        raise UnreadableFile(f"{relative} holds {_describe(value)}, not {_TYPE_NAMES.get(expected, expected.__name__)}")
    return value


def _describe(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return _TYPE_NAMES.get(type(value), type(value).__name__)
