"""One writer at a time per cache entry of ``data.cache_dir``, however many processes or nodes share it.

The lock is ``flock`` on a file beside the entry: the kernel drops it when its holder ends (even
``kill -9``), and NFS clients carry it to the server as a POSIX lock, so the nodes of a job that
share the cache over NFS wait for each other too. The holder re-checks the entry once it has the
lock: the process that waited finds the finished entry and reads it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` while the block runs, waiting for another holder first.

    Args:
        path: the lock file (created with its folder if missing; it stays after the block).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process that prepares %s", path.with_suffix(""))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def remove_leftovers(root: Path) -> None:
    """Remove the temporary folders that a writer of the entry ``root`` killed half-way left beside it
    (:func:`lmtrain.files.atomic.atomic_directory` names them ``.tmp-<name>-*``); call only while holding the
    entry's lock, so that no live writer's folder is removed."""
    for leftover in root.parent.glob(f".tmp-{root.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
