"""The preflight measured on a short plan's first step: a step that does not fit, a run killed in that step; a
time budget over fine-tuning batches of uneven width, estimated from a batch of mean width; a run that would
mostly evaluate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lmtrain
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


def budget_over_uneven_batches(ws: Workspace) -> Outcome:
    """A time budget (the estimate is checked against it) over NER sentences of every length: the preflight times
    a typical batch after the longest, the run stops at the budget and finishes."""
    run = ws.root / "budget-uneven"
    tagger = ["task=ner", "debug=tiny", "init=scratch", "trainer.progress=false", "trainer.save_every=0"]
    proc = ws.lmtrain("finetune", *tagger, "trainer.max_steps=100000", "trainer.max_time=8s", f"hydra.run.dir={run}")
    output = proc.stdout + proc.stderr
    line = next((line for line in output.splitlines() if "a typical batch (" in line), "")
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    held = proc.returncode == 0 and bool(line) and summary.get("stopped_by") == "max_time"
    return Outcome(proc.returncode, " ".join(line.split(" - ", 1)[-1].split())[:160], held)


def evaluating_at_every_step(ws: Workspace) -> Outcome:
    """``trainer.eval_every=1``: the preflight says evaluation is most of the run and how to trim it; the run
    still does what was typed (stopped here by a time budget) and finishes."""
    run = ws.root / "eval-every-step"
    tagger = ["task=ner", "debug=tiny", "init=scratch", "trainer.progress=false", "trainer.save_every=0"]
    held_out = Path(lmtrain.__file__).parent / "resources" / "ner" / "lee_ner.train.conll"  # 480 sentences
    proc = ws.lmtrain(
        "finetune",
        *tagger,
        f"data.eval_file={held_out}",
        "trainer.eval_batches=null",
        "trainer.max_steps=400",
        "trainer.eval_every=1",
        "trainer.max_time=6s",
        f"hydra.run.dir={run}",
    )
    output = proc.stdout + proc.stderr
    line = next((line for line in output.splitlines() if "evaluation is most of that time" in line), "")
    held = proc.returncode == 0 and "raise trainer.eval_every" in line and (run / "summary.json").is_file()
    return Outcome(proc.returncode, " ".join(line.split(" - ", 1)[-1].split())[:160], held)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "first step out of memory": first_step_out_of_memory,
    "kill -9 in the measured first step": killed_in_the_measured_first_step,
    "a time budget over fine-tuning batches of uneven width": budget_over_uneven_batches,
    "an evaluation at every step": evaluating_at_every_step,
}
