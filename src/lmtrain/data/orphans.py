"""Worker processes that end when the process that started them ends, however it ends.

A worker of a process pool waits for work on a pipe whose writing end it holds itself, so it never
sees its parent go: after ``kill -9`` of the parent (or the OOM killer) it would wait forever, and
with it the resource tracker that waits for every worker. On Linux the kernel kills the worker
when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread of the worker checks once a
second whether its parent is still the process that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_CHECK_SECONDS = 1.0


def _kernel_kills_orphan() -> bool:
    """Ask Linux to send this process SIGKILL when its parent ends; whether it agreed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_CHECK_SECONDS)
    os._exit(1)  # an orphan: nobody reads its results any more


def end_with_parent(parent: int) -> None:
    """End this process (a worker) as soon as ``parent``, the process that started it, has ended.

    Args:
        parent: the pid of the process that started this one (``os.getpid()`` there).
    """
    if not _kernel_kills_orphan():
        threading.Thread(target=_watch, args=(parent,), name="end-with-parent", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the kernel was asked
        os._exit(1)
