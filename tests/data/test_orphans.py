"""A worker process ends with its parent: through the kernel on Linux, else through a thread that watches."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the parent starts the worker, says its pid and sleeps; the worker asks to end with it, says so and sleeps
PARENT = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(__import__("os").getpid())])
print(worker.pid, flush=True)
time.sleep(600)
"""
WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from lmtrain.data import orphans
if {portable}:
    orphans._kernel_kills_orphan = lambda: False  # a system without prctl
orphans.end_with_parent(int(sys.argv[2]))
print("ready", flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not status.exists() or status.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process tree")
@pytest.mark.parametrize("portable", [False, True])
def test_a_worker_ends_when_its_parent_is_killed(portable):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, WORKER.format(portable=portable), str(REPO / "src")],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = int(parent.stdout.readline())
    try:
        assert select.select([parent.stdout], [], [], 60)[0] and parent.stdout.readline() == "ready\n"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker)
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)
