"""One process at a time per run directory: an advisory lock on ``<run dir>/.lock``.

The lock is ``flock`` on an open file, so the kernel drops it when its process ends, however it
ends (``kill -9`` included): a lock left by a dead process is simply taken by the next one. The
file records who holds it (pid, host, command line) so a refused process can name the holder.

The file is opened without following a symbolic link (a link named ``.lock`` is refused, never
written through), and a ``.lock`` of another program (a non-empty file that is not such a record)
is refused rather than overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

from lmtrain.errors import UserError
from lmtrain.files.atomic import make_dirs, open_nofollow

LOCK_FILE = ".lock"


def _holder_record(fd: int) -> dict | None:
    """The holder's record in the open lock file (None if it is not one lmtrain wrote)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and {"pid", "host", "command", "since"} <= info.keys() else None


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it ("another process" if unreadable)."""
    info = _holder_record(fd)
    if info is None:
        return "another process"
    return f"process {info['pid']} on {info['host']} (`{info['command']}`, since {info['since']})"


def _check_ours(fd: int, path: Path) -> None:
    """Refuse a ``.lock`` that is not a regular file, or holds something other than an lmtrain lock record."""
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and (info.st_size == 0 or _holder_record(fd) is not None):
        return
    os.close(fd)
    raise UserError(
        f"{path} is not a lock file of lmtrain (it holds something else), so lmtrain will not "
        "overwrite it. Move it away, or choose another folder for the run (hydra.run.dir=...)."
    )


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held until :meth:`release` or exit.

    Args:
        run_dir: the directory to lock (created if missing).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, command: str = "lmtrain") -> RunLock:
        """Take the lock (recording ``command`` as what holds it) or raise UserError naming the holder."""
        make_dirs(self.path.parent)
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK)
        _check_ours(fd, self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(
                f"{self.path.parent} is in use by {holder}: two runs must not write one run directory. "
                "Wait for it to end (or stop it), or choose another hydra.run.dir."
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([command, *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode("utf-8"))
        self._fd = fd
        return self

    def acquire_if_free(self, command: str = "lmtrain") -> bool:
        """Take the lock if no other process holds it; False (and nothing changed) when one does."""
        try:
            self.acquire(command)
        except UserError:
            return False
        return True

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race with a process about to lock it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
