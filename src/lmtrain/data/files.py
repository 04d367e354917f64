"""The user's data files: globs and folders expanded, compressed text opened, UTF-8 checked.

A file name may end in ``.gz``, ``.bz2`` or ``.xz`` (``corpus.txt.gz``, ``train.jsonl.bz2``): it
is decompressed as it is read and its format is that of the name without the compression suffix.
Parquet files (``.parquet``) hold columns, read with `datasets`; nothing is ever unpickled.
"""

from __future__ import annotations

import bz2
import codecs
import glob
import gzip
import hashlib
import io
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from lmtrain.errors import UserError

# compression suffix -> what opens a file (a name, or a binary stream) for reading it decompressed
COMPRESSIONS: dict[str, Callable[..., IO[bytes]]] = {
    ".gz": gzip.open,  # type: ignore[dict-item]  # typeshed's GzipFile lacks IO[bytes], unlike BZ2File, LZMAFile
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
# what a folder given as data files contributes: the files whose format lmtrain reads
DATA_SUFFIXES = (".txt", ".text", ".jsonl", ".json", ".parquet", ".tsv", ".csv", ".conll", ".iob", ".bio")
_GLOB_CHARS = set("*?[")


def compression(path: Path) -> str | None:
    """The compression suffix of ``path`` (``.gz`` / ``.bz2`` / ``.xz``), or None."""
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSIONS else None


def data_suffix(path: Path) -> str:
    """The suffix that says the format: ``.jsonl`` for ``a.jsonl.gz``, ``.txt`` for ``a.txt``."""
    return (path.with_suffix("") if compression(path) else path).suffix.lower()


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file (by its suffix)."""
    return data_suffix(path) == ".parquet"


def open_bytes(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, decompressed on the fly when its name says so."""
    opener = COMPRESSIONS.get(compression(path) or "", open)
    return opener(path, "rb")


def open_text(path: Path, newline: str | None = None) -> IO[str]:
    """``path`` opened for reading as UTF-8 text, decompressed on the fly when its name says so."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8", newline=newline)


def _folder_files(folder: Path, key: str) -> list[Path]:
    """The data files inside ``folder`` and its sub-folders, sorted (hidden files skipped)."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and data_suffix(p) in DATA_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise UserError(
            f"{key}: the folder {folder} holds no data files ({', '.join(DATA_SUFFIXES)}, also "
            "compressed as .gz / .bz2 / .xz); give the files themselves or a pattern such as "
            f"{key}=[{folder}/*.txt]."
        )
    return files


def expand_paths(patterns: list[str], key: str) -> list[Path]:
    """Files named by ``patterns``: a file as it is, a glob's matches sorted, a folder's data files sorted.

    Args:
        patterns: paths, glob patterns (``corpus/*.txt``, ``data/**/*.jsonl.gz``) or folders.
        key: the config key that named them, quoted in errors.
    Returns:
        The files in the order given (each pattern's matches sorted), each once.
    Raises:
        UserError: a pattern that matches no file.
    """
    files: list[Path] = []
    for pattern in patterns:
        text = str(Path(pattern).expanduser())
        if _GLOB_CHARS & set(text) and not Path(text).exists():  # a file named data[1].txt is itself
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise UserError(
                    f"{key}: the pattern {pattern} matches no file (relative patterns are relative "
                    f"to the directory you run lmtrain from: {Path.cwd()}). Check the folder and "
                    "the extension."
                )
        elif Path(text).is_dir():
            matches = _folder_files(Path(text), key)
        else:
            matches = [Path(text)]
        files += [path for path in matches if path not in files]
    return files


class _ByteReader(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _check_utf8(stream: _ByteReader, path: Path, key: str) -> bool:
    """Read ``stream`` to the end; raise UserError at invalid UTF-8; return whether it holds any text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, has_text = 1, False
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        try:
            has_text = has_text or bool(decoder.decode(chunk).strip())
        except UnicodeDecodeError as error:
            line += chunk[: error.start].count(b"\n")
            raise UserError(
                f"{key}: {path} is not UTF-8 text (invalid byte at line {line}). "
                "Convert it, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`."
            ) from None
        line += chunk.count(b"\n")
    return has_text


class _Digesting(io.RawIOBase):
    """A read-only stream that hashes the bytes read through it (the file's content, before decompression)."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.digest = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        """The next ``size`` bytes (the rest for -1), hashed; never None, unlike a non-blocking raw stream's."""
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def check_data_file(path: Path, key: str) -> str:
    """Raise UserError unless ``path`` exists and holds UTF-8 text (decompressed); return its SHA-256.

    Parquet files are only hashed (their columns are checked when read).

    Args:
        path: the file to check.
        key: the config key that named it, quoted in the message.
    Returns:
        The hex digest of the file's bytes as stored (cache keys change when the data changes).
    """
    if not path.exists():
        raise UserError(
            f"{key}: file {path} does not exist. Check the path (relative paths are "
            f"relative to the directory you run lmtrain from: {Path.cwd()})."
        )
    if path.is_dir():
        raise UserError(
            f"{key}: {path} is a directory with no readable files; give the files inside it, e.g. {key}=[{path}/*.txt]."
        )
    with open(path, "rb") as raw:
        stream = _Digesting(raw)
        if is_parquet(path):
            for _ in iter(lambda: stream.read(1 << 22), b""):
                pass
            return stream.digest.hexdigest()
        opener = COMPRESSIONS.get(compression(path) or "")
        try:
            has_text = _check_utf8(opener(stream) if opener else stream, path, key)
        except (OSError, EOFError, lzma.LZMAError) as error:
            raise UserError(
                f"{key}: {path} could not be decompressed ({type(error).__name__}: {error}); "
                f"is it really {compression(path)}-compressed?"
            ) from None
    if not has_text:
        raise UserError(f"{key}: {path} is empty. Give a file with at least a few documents of text.")
    return stream.digest.hexdigest()
