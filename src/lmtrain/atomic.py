"""Write a directory so that readers see either nothing or all of it, never a half.

What lmtrain writes follows the user's umask, like any file a shell command creates: temporary
directories (``tempfile.mkdtemp``: 0700) and safetensors files (0600) would otherwise stay
private, and teammates on a shared filesystem could not read a checkpoint or an exported model.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; rename it to ``final`` when the block succeeds.

    On any failure (an exception, Ctrl-C) the temporary directory is removed and ``final`` is
    left as it was. An existing ``final`` is replaced. The finished directory and its files
    follow the umask (see :func:`follow_umask`).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        follow_umask(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
