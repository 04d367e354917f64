"""What every hostile probe shares: the workspace with a finished tiny run, and how an outcome is judged."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TINY = [
    "debug=tiny",
    "trainer.progress=false",
    "trainer.max_steps=4",
    "trainer.save_every=2",
    "trainer.eval_every=0",
    "trainer.log_every=1",
]


@dataclass
class Outcome:
    """What one probe saw."""

    code: int | None
    message: str
    held: bool


@dataclass
class Workspace:
    """The probes' folder: a data cache and a finished tiny run (on the bundled corpus) to attack."""

    root: Path

    @property
    def data(self) -> list[str]:
        return [f"data.cache_dir={self.root / 'cache'}"]

    def lmtrain(
        self, *args: str, timeout: int = 600, preexec_fn: Callable[[], None] | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``lmtrain <args>`` in the workspace (``preexec_fn``: run in the child first, to set limits)."""
        env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
        return subprocess.run(
            [sys.executable, "-m", "lmtrain", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            preexec_fn=preexec_fn,
        )

    def fresh_run(self, name: str) -> Path:
        """A copy of the finished run, to damage."""
        path = self.root / name
        shutil.copytree(self.root / "finished", path, symlinks=True)
        return path


def digest(run_dir: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and path.name != ".lock" and path.suffix != ".log":
            h.update(str(path.relative_to(run_dir)).encode() + path.read_bytes())
    return h.hexdigest()


def last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    error = next((line for line in lines if "error:" in line), lines[-1] if lines else "")
    return " ".join(error.split())[:160]


def refused(proc: subprocess.CompletedProcess, fragment: str, intact: bool = True) -> Outcome:
    held = proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr and intact
    return Outcome(proc.returncode, last_line(proc), held)
