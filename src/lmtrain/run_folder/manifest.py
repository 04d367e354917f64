"""``.lmtrain-files``: the record of what lmtrain created in a run folder, so that it deletes only that.

A run folder is the user's property: it may be a folder of theirs (``hydra.run.dir=.``) that holds
their own logs, tokenizer or TensorBoard folder. Before lmtrain creates an entry directly in a folder
holding this record (a file, or a folder with everything in it), it appends the entry's name here
(:func:`record_entry`, called by every writer in :mod:`lmtrain.files.atomic`). Cleaning up
(``trainer.overwrite=true``, an attempt that saved nothing, a command refused before any work)
removes only recorded entries, and an entry of the same name that is not recorded is never
replaced: the command is refused, naming it.

The record holds one top-level name per line; lines starting with ``#`` are comments. It lives in
the folder it describes, so it travels with a copied or downloaded run.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from lmtrain.errors import UserError

MANIFEST_FILE = ".lmtrain-files"
_HEADER = "# what lmtrain created in this folder, one name per line: it never replaces or deletes anything else\n"
_MAX_BYTES = 1 << 20  # a record lists a few dozen names; a bigger file is not lmtrain's


def not_written_here(path: Path) -> UserError:
    """The error for an entry lmtrain would replace although it did not write it."""
    return UserError(
        f"{path} is already there and lmtrain did not write it (it is not in "
        f"{path.parent / MANIFEST_FILE}, the record of what lmtrain wrote in this folder); lmtrain "
        "never replaces a file it did not write. Move it away, or choose another folder for the "
        "run (hydra.run.dir=...). Nothing was changed by this command."
    )


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(
                f"{path} is a symbolic link; lmtrain never reads its record of written files through "
                "a link, nor writes through one. Remove the link (its target is not touched)."
            ) from None
        raise


class RunManifest:
    """The record of the entries lmtrain created in ``folder``.

    Args:
        folder: the run folder.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_FILE

    def exists(self) -> bool:
        """Whether the folder has a record (a link there counts, and is refused when read)."""
        return os.path.lexists(self.path)

    def names(self) -> set[str]:
        """The recorded names (empty without a record).

        Raises:
            UserError: the record is a link, not a regular file, or too big to be lmtrain's.
        """
        try:
            fd = _open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return set()
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_BYTES:
                raise UserError(
                    f"{self.path} is not lmtrain's record of the files it wrote (not a small regular "
                    "file); move it away or choose another folder for the run."
                )
            text = file.read().decode("utf-8", errors="replace")
        return {line for line in text.splitlines() if line and not line.startswith("#")}

    def owns(self, name: str) -> bool:
        """Whether lmtrain recorded creating the entry ``name``."""
        return name in self.names()

    def start(self) -> bool:
        """Create the record if the folder has none; True when it was created now."""
        try:
            fd = _open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            self.names()  # refuses a link or a foreign file of that name
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(_HEADER)
        return True

    def record(self, *names: str) -> None:
        """Add ``names`` (top-level entry names) to the record, each once."""
        new = [name for name in dict.fromkeys(names) if name not in self.names()]
        if any("\n" in name or "/" in name or name in ("", ".", "..") for name in new):
            raise ValueError(f"not a top-level entry name: {new!r}")
        if new:
            with os.fdopen(_open(self.path, os.O_WRONLY | os.O_APPEND), "w", encoding="utf-8") as file:
                file.write("".join(f"{name}\n" for name in new))

    def forget(self, names: list[str] | set[str]) -> None:
        """Drop ``names`` from the record (their entries were removed), replacing the file atomically."""
        # imported here: lmtrain.files.atomic records each entry it creates through this module
        from lmtrain.files.atomic import write_text

        kept = sorted(self.names() - set(names))
        write_text(self.path, _HEADER + "".join(f"{name}\n" for name in kept))

    def foreign(self, names: tuple[str, ...] | list[str]) -> list[Path]:
        """The entries among ``names`` that exist in the folder but were not recorded, or are links.

        lmtrain never creates a link directly in a run folder, so a link there is never its own.
        """
        recorded = self.names()
        found = []
        for name in dict.fromkeys(names):
            path = self.folder / name
            if os.path.islink(path) or (os.path.lexists(path) and name not in recorded):
                found.append(path)
        return found


def record_entry(path: Path) -> None:
    """Before lmtrain creates or replaces ``path``: record it in its folder's record, if the folder has one.

    Raises:
        UserError: the folder has a record and ``path`` exists without being in it (lmtrain did not
            write it).
    """
    path = Path(os.path.abspath(path))  # "." or "sub/.." name their folder, not an entry of it
    manifest = RunManifest(path.parent)
    if path.name == MANIFEST_FILE or not manifest.exists():
        return
    if path.name in manifest.names():
        return
    if os.path.lexists(path):
        raise not_written_here(path)
    manifest.record(path.name)
