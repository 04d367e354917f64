"""A run's state: what its ``status.json`` says, else a judgement from its files (see :mod:`lmtrain.runs.record`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lmtrain.run_folder.layout import CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE
from lmtrain.run_folder.status import process_alive, read_status
from lmtrain.runs.metrics_log import is_step
from lmtrain.runs.run_files import open_regular

RUNNING_WINDOW_S = 120.0  # a run whose files changed this recently is taken to be alive
TRAINER_STATE = "trainer_state.pt"  # the file that makes a checkpoint resumable
LOG_TAIL_BYTES = 4 << 20  # a job log's error is at its end: read no more of a large log than this
MAX_DETAIL_CHARS = 300
_ERROR_MARKERS = (b"][ERROR]", b"][CRITICAL]", b"Traceback (most recent call last)")


def _log_tail_has_error(path: Path) -> bool:
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - LOG_TAIL_BYTES))
            tail = f.read(LOG_TAIL_BYTES)
    except OSError:
        return False
    return any(marker in tail for marker in _ERROR_MARKERS)


def log_has_error(run_dir: Path) -> bool:
    """Whether a Hydra job log (``*.log`` in the run directory) records an error or a traceback near its end."""
    return any(_log_tail_has_error(path) for path in Path(run_dir).glob("*.log"))


def status_detail(record: dict[str, Any]) -> str | None:
    """A few words on how a run ended, from its ``status.json`` record."""
    if record["state"] == "failed":
        error = record.get("error")
        text = " ".join(str(error).split()) if isinstance(error, (str, int, float)) else ""
        return text[:MAX_DETAIL_CHARS] or None
    if record["state"] == "interrupted":
        signal, step = record.get("signal"), record.get("step")
        by = f"by {signal[:40]}" if isinstance(signal, str) and signal else ""
        at = f"at step {step}" if is_step(step) else "before its first checkpoint"
        return f"{by} {at}".strip()
    return None


def _fresh(path: Path, now: float, window: float) -> bool:
    try:
        return path.is_file() and now - path.stat().st_mtime < window
    except OSError:
        return False


def guess_status(run_dir: Path, has_summary: bool, gone: bool, now: float, running_window: float) -> str:
    """``finished`` | ``running`` | ``interrupted`` | ``failed``, judged from the files.

    Args:
        run_dir: the run directory.
        has_summary: whether it holds a summary (then it finished).
        gone: ``status.json`` says running, but its process is known to be dead (so fresh files
            do not make it running).
        now, running_window: files changed within ``running_window`` seconds before ``now`` mean running.
    """
    if has_summary:
        return "finished"
    if log_has_error(run_dir):
        return "failed"
    live = [] if gone else [run_dir / METRICS_FILE, run_dir / ".hydra" / "config.yaml", *run_dir.glob("*.log")]
    if any(_fresh(p, now, running_window) for p in live):
        return "running"
    if (run_dir / CHECKPOINTS_DIR / "last" / TRAINER_STATE).is_file():
        return "interrupted"
    return "failed"


def judge_status(
    run_dir: Path,
    status: dict[str, Any] | None,
    has_summary: bool,
    now: float,
    running_window: float = RUNNING_WINDOW_S,
) -> tuple[str, str | None]:
    """The state and its detail: ``status.json``'s (:func:`lmtrain.run_folder.status.read_status`) while it can be
    believed, a ``running`` one only while its process lives on this host; else :func:`guess_status`."""
    alive = process_alive(status) if status is not None and status["state"] == "running" else None
    if status is not None and (status["state"] != "running" or alive is True):
        return status["state"], status_detail(status)
    return guess_status(run_dir, has_summary, alive is False, now, running_window), None


def run_status(run_dir: str | Path, now: float | None = None, running_window: float = RUNNING_WINDOW_S) -> str:
    """``finished`` | ``running`` | ``interrupted`` | ``failed`` of a run directory (see :func:`judge_status`)."""
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    return judge_status(run_dir, read_status(run_dir), (run_dir / SUMMARY_FILE).is_file(), now, running_window)[0]
