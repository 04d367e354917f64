"""``status.json``: how a command ended, written into its run directory when it ends.

Every command that claimed a run directory writes ``running`` (with its pid and host) when it
starts and, when it ends, one of

    finished      the command returned
    failed        with ``error``: the message the user saw (or the exception's type and text)
    interrupted   with ``signal`` and ``step``: the step of the checkpoint a resume continues from

so ``lmtrain runs`` need not guess from file times and logs. The file is replaced atomically, so
a reader sees the old state or the new one (never through a link: see :mod:`lmtrain.files.atomic`).
A process killed outright (``kill -9``) leaves ``running`` behind; readers check whether that pid still
lives (see :func:`process_alive`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError
from lmtrain.files.atomic import write_text

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
STATES = ("running", "finished", "failed", "interrupted")
MAX_STATUS_BYTES = 1 << 20  # a record is a few hundred bytes
MAX_PID = 2**22  # Linux's highest possible pid (PID_MAX_LIMIT); other systems stay below it
_STEP_DIR = re.compile(r"step-(\d+)$")


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of ``checkpoints/last`` (None without one)."""
    last = Path(run_dir) / "checkpoints" / "last"
    match = _STEP_DIR.search(last.resolve().name) if last.exists() else None
    return int(match.group(1)) if match else None


def write_status(run_dir: str | Path, state: str, **details: Any) -> Path | None:
    """Write ``<run_dir>/status.json``: ``state``, the time, pid and host, and ``details``.

    An ``interrupted`` state without a ``step`` gets the step of ``checkpoints/last``. A failure
    to write is logged, never raised: a status file must not fail the command it describes.

    Args:
        run_dir: the run directory.
        state: one of :data:`STATES`.
        details: JSON-ready extras (``command``, ``error``, ``signal``, ``step``, ``exit_code``).
    Returns:
        The file written, or None if it could not be written.
    """
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; one of {STATES}")
    if state == "interrupted" and details.get("step") is None:
        details["step"] = checkpoint_step(run_dir)
    record = {
        "state": state,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **details,
    }
    path = Path(run_dir) / STATUS_FILE
    try:
        write_text(path, json.dumps(record, indent=2) + "\n")
    except (OSError, UserError) as error:  # a link or a file of the user's there is refused, never written
        log.warning("could not write %s: %s", path, error)
        return None
    return path


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``status.json`` (None if it has none, or it is not a regular file of at most
    :data:`MAX_STATUS_BYTES` holding a JSON object of a known state)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        if not path.is_file():  # a FIFO would block the reader, a device never end
            return None
        with open(path, "rb") as f:
            data = f.read(MAX_STATUS_BYTES + 1)
        record = json.loads(data.decode("utf-8")) if len(data) <= MAX_STATUS_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and record.get("state") in STATES else None


def recorded_pid(record: dict[str, Any]) -> int | None:
    """The record's ``pid`` when it can name a process: a whole number from 1 to :data:`MAX_PID`."""
    pid = record.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= MAX_PID else None


def process_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process of a ``running`` record still lives; None when it ran on another host.

    Only a valid pid of a live process on this host counts: ``pid`` 0 or -1 would ask about a
    whole process group or every process, so a missing, negative, zero or absurd pid is a
    process that is gone.
    """
    if record.get("host") != socket.gethostname():
        return None
    pid = recorded_pid(record)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process with that pid: alive
        return True
    return True


def exit_state(code: Any) -> tuple[str, dict[str, Any]]:
    """The state and details of a ``sys.exit(code)`` (128 + a signal number: interrupted by it)."""
    if code in (None, 0):
        return "finished", {}
    if isinstance(code, int) and 128 < code < 128 + 65:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return "interrupted", {"signal": name, "exit_code": code}
    return "failed", {"error": f"exit code {code}", "exit_code": code}


def record_exit(claim: Any, command: str, state: str, **details: Any) -> None:
    """:func:`write_status` for a command's claimed run directory (rank 0 of a job only).

    Args:
        claim: the :class:`lmtrain.run_folder.claim.RunClaim` of the command, or None if it never
            claimed its directory (then nothing is written: a refused command changes nothing).
        command: the command's name.
        state, details: as for :func:`write_status`.
    """
    if claim is not None and claim.lock is not None:
        write_status(claim.path, state, command=command, **details)
