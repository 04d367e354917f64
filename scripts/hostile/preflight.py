"""The preflight measured on a short plan's first step: a step that does not fit, a run killed in that step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

from hostile.common import TINY, Outcome, Workspace, refused

ADDRESS_SPACE = 5 << 29  # 2.5 GiB a process may map: imports and a tiny model fit, a batch of 13,000 sequences does not


def first_step_out_of_memory(ws: Workspace) -> Outcome:
    def limit_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    run = ws.root / "first-step-oom"
    proc = ws.lmtrain(
        "pretrain", *TINY, "trainer.batch_size=13000", *ws.data, f"hydra.run.dir={run}", preexec_fn=limit_memory
    )
    no_checkpoint = not list((run / "checkpoints").glob("step-*"))
    return refused(proc, "does not fit in memory", no_checkpoint)


def killed_in_the_measured_first_step(ws: Workspace) -> Outcome:
    """kill -9 while the first step runs: no checkpoint; the same command starts over and finishes."""
    run = ws.root / "killed-first-step"
    args = ["pretrain", *TINY, "trainer.batch_size=2048", *ws.data]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "lmtrain", *args, f"hydra.run.dir={run}"]
    with subprocess.Popen(
        command, cwd=ws.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "memory and time measured on the first step" in line:  # the first step starts now
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
    killed = proc.returncode == -signal.SIGKILL and not list((run / "checkpoints").glob("step-*"))
    again = ws.lmtrain(*args, f"hydra.run.dir={run}")  # the same command: the attempt saved nothing
    output = again.stdout + again.stderr
    over = "saved no checkpoint; starting over" in output
    finished = again.returncode == 0 and (run / "summary.json").exists()
    said = next((line for line in output.splitlines() if "starting over" in line), "")
    return Outcome(again.returncode, " ".join(said.split())[-160:], killed and over and finished)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "first step out of memory": first_step_out_of_memory,
    "kill -9 in the measured first step": killed_in_the_measured_first_step,
}
