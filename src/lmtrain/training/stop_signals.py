"""Stopping a run cleanly on a signal: Ctrl-C, and what SLURM and Kubernetes send before preemption.

The first signal only asks: the trainer finishes its step, saves a checkpoint and raises
:class:`TrainingInterrupted`. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


class TrainingInterrupted(Exception):
    """Raised after a stop signal (Ctrl-C, SIGTERM, SIGUSR1) once the current step finished and was saved."""

    def __init__(self, checkpoint: Path, step: int, signum: int = signal.SIGINT):
        super().__init__(f"interrupted at step {step}; checkpoint saved in {checkpoint}")
        self.checkpoint = checkpoint
        self.step = step
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended (130 for Ctrl-C)."""
        return 128 + int(self.signum)


def continue_hint(run_dir: Path, stop: TrainingInterrupted) -> str:
    """What to tell a user whose run was stopped: where the checkpoint is and how to go on."""
    try:
        name = signal.Signals(stop.signum).name
    except ValueError:
        name = f"signal {stop.signum}"
    return (
        f"Stopped by {name} at step {stop.step}; checkpoint saved in {stop.checkpoint}.\n"
        f"To continue: lmtrain resume {run_dir}"
    )


class StopRequests:
    """While installed, the stop signals set :attr:`requested` (and remember which came first)."""

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGINT
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        if not self.requested:
            self.signum = signum
        self.requested = True

    def install(self) -> None:
        """Route the stop signals here (only the main thread may; elsewhere they stay with the caller).

        A signal the process was left to ignore stays ignored: a job a script starts in the background
        (`lmtrain ... &` without job control) ignores Ctrl-C, as `nohup` makes a job ignore hang-ups.
        """
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:
                break

    def restore(self) -> None:
        """Give the signals back to their previous handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
