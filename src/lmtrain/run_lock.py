"""One process at a time per run directory: an advisory lock on ``<run dir>/.lock``.

The lock is ``flock`` on an open file, so the kernel drops it when its process ends, however it
ends (``kill -9`` included): a lock left by a dead process is simply taken by the next one. The
file records who holds it (pid, host, command line) so a refused process can name the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from lmtrain.errors import UserError

LOCK_FILE = ".lock"


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as its holder wrote it ("unknown" if unreadable)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']} (`{info['command']}`, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held until :meth:`release` or exit.

    Args:
        run_dir: the directory to lock (created if missing).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, command: str = "lmtrain") -> "RunLock":
        """Take the lock (recording ``command`` as what holds it) or raise UserError naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{self.path.parent} is in use by {_holder(self.path)}: two runs must not write one run directory. "
                "Wait for it to end (or stop it), or choose another hydra.run.dir."
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join([command, *sys.argv[1:]]),
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode("utf-8"))
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race with a process about to lock it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
