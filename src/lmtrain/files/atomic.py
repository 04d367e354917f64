"""Write files and folders so that readers see either nothing or all of it, never through a link.

Every file lmtrain writes goes through this module:

- nothing is written, truncated or deleted through a symbolic link: files are opened with
  ``O_NOFOLLOW`` and a link found where a file or folder is to be written is refused with a
  :class:`~lmtrain.errors.UserError` naming it (deleting removes the link itself, never its target);
- a whole file is written under a temporary name beside it and renamed into place, so a kill
  leaves the old file or the new one;
- in a folder that keeps a record of what lmtrain wrote there (:mod:`lmtrain.run_folder.manifest`, a run
  folder), each new entry is recorded before it is created, and an entry lmtrain did not write is
  never replaced.

What lmtrain writes follows the user's umask, like any file a shell command creates: temporary
directories (``tempfile.mkdtemp``: 0700) and safetensors files (0600) would otherwise stay
private, and teammates on a shared filesystem could not read a checkpoint or an exported model.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from lmtrain.errors import UserError
from lmtrain.run_folder.manifest import record_entry


def current_umask() -> int:
    """The process's umask (read without changing it where the kernel reports it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the only portable way to read it is to set it, then put it back
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give ``path`` (and, for a directory, everything below it) the modes a new file would get.

    Directories become ``0o777 & ~umask``, files ``0o666 & ~umask``; symbolic links are left alone.
    """
    mask = current_umask()
    path = Path(path)
    entries = [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]
    for entry in entries:
        mode = entry.lstat().st_mode
        if stat.S_ISDIR(mode):
            os.chmod(entry, 0o777 & ~mask)
        elif stat.S_ISREG(mode):
            os.chmod(entry, 0o666 & ~mask)


def link_refused(path: str | Path) -> UserError:
    """The error for a symbolic link found where lmtrain was to write or delete."""
    return UserError(
        f"{path} is a symbolic link; lmtrain never writes, truncates or deletes through a link "
        "(it could point at any file). Remove the link (the file it points to is not touched) or "
        "write somewhere else."
    )


def is_link(path: str | Path) -> bool:
    """Whether ``path`` itself is a symbolic link (a dangling one included)."""
    return os.path.islink(path)


def open_nofollow(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a symbolic link at ``path``; a new file is recorded first (see module doc).

    Raises:
        UserError: ``path`` is a symbolic link.
    """
    if is_link(path):
        raise link_refused(path)
    if flags & os.O_CREAT:
        record_entry(Path(path))
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:  # a link put there since the check above
            raise link_refused(path) from None
        raise


def open_text(path: str | Path, append: bool = True) -> IO[str]:
    """``path`` opened for writing UTF-8 text (created if missing), never through a link.

    Args:
        append: add to the end of an existing file; False empties it first.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(open_nofollow(path, flags), "w", encoding="utf-8")


def _temporary_beside(final: Path) -> Path:
    """A new empty file beside ``final`` with a name nobody else uses (``.<name>.tmp-<random>``)."""
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:12]}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))
    return tmp


def write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Let ``write(tmp)`` write a file under a temporary name beside ``path``, then rename it to ``path``.

    For writers that take a file name (tokenizers, gensim). The rename replaces ``path``
    itself, never what a link there points to; a link at ``path`` is refused, and on any failure the
    temporary file is removed and ``path`` left as it was.

    Raises:
        UserError: ``path`` is a symbolic link, or a file lmtrain did not write in a run folder.
    """
    path = Path(path)
    if is_link(path):
        raise link_refused(path)
    record_entry(path)
    tmp = _temporary_beside(path)
    try:
        write(tmp)
        if is_link(path):  # a link put there while writing
            raise link_refused(path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_with`)."""

    def write(tmp: Path) -> None:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC), "wb") as file:
            file.write(data)

    return write_with(path, write)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_with`)."""
    return write_bytes(path, text.encode("utf-8"))


def create_dirs(path: str | Path) -> list[Path]:
    """``mkdir -p path``, each new folder recorded first; returns the folders it created, outermost first.

    On a failure the folders it created are removed again.

    Raises:
        UserError: a link to nowhere is where a folder goes, or a run folder holds an entry of that
            name that lmtrain did not write (a link included).
        OSError: a folder cannot be made (a file in the way, no permission).
    """
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if os.path.isdir(folder):  # an existing folder reached through a link is the user's setup: used
            break
        missing.append(folder)
    if not missing:
        record_entry(path)  # in a run folder, an existing folder of that name must be lmtrain's
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            record_entry(folder)
            try:
                os.mkdir(folder)
            except FileExistsError:
                if is_link(folder):  # a link to nowhere where the folder goes
                    raise link_refused(folder) from None
                if not os.path.isdir(folder):
                    raise
                continue
            created.append(folder)
    except BaseException:
        for folder in reversed(created):  # all or nothing: a failure leaves no half-made path behind
            folder.rmdir()
        raise
    return created


def cannot_create_reason(error: OSError) -> str:
    """Why :func:`create_dirs` could not make a folder, in a few words (``a file is in the way``)."""
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return "a file is in the way"
    return error.strerror or str(error)


def make_dirs(path: str | Path) -> Path:
    """``mkdir -p path`` through :func:`create_dirs`; returns ``path``."""
    create_dirs(path)
    return Path(path)


def remove_entry(path: str | Path) -> None:
    """Delete a file, a link (the link itself, never its target) or a folder with everything in it.

    ``shutil.rmtree`` never follows the links it finds inside a folder; a missing ``path`` is no error.
    """
    path = Path(path)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink()


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; rename it to ``final`` when the block succeeds.

    On any failure (an exception, Ctrl-C) the temporary directory is removed and ``final`` is
    left as it was. An existing ``final`` is replaced (a link there is removed, not followed). The
    finished directory and its files follow the umask (see :func:`follow_umask`).
    """
    make_dirs(final.parent)
    record_entry(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        follow_umask(tmp)
        remove_entry(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
