"""How long a run trains: no preset caps time, a time budget states its plan and changes the total once,
a resumed run keeps an explicit decay horizon, and a task's steps depend on the backbone unless given."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

from hostile.common import TINY, Outcome, Workspace, last_line, refused

MODEL_PRESETS = ("albef", "bert", "elmo", "gpt", "roberta")


def _output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def presets_cap_no_time(ws: Workspace) -> Outcome:
    budgets = {}
    for model in MODEL_PRESETS:
        proc = ws.lmtrain("pretrain", f"model={model}", "--cfg", "job")
        budgets[model] = re.findall(r"^\s+max_time: (.*)$", proc.stdout, re.MULTILINE)
    capped = {m: b for m, b in budgets.items() if b != ["null"]}
    return Outcome(0, f"max_time of each preset: {budgets}", not capped)


def budget_plans_once(ws: Workspace) -> Outcome:
    run = ws.root / "budget"
    proc = ws.lmtrain(
        "pretrain",
        *TINY,
        *ws.data,
        "model=gpt",
        "trainer.max_steps=100000",
        "trainer.max_time=5s",
        f"hydra.run.dir={run}",
    )
    lines = [line.split(" - ", 1)[-1] for line in _output(proc).splitlines()]
    first_step = next((i for i, line in enumerate(lines) if re.match(r"step \d+/", line)), len(lines))
    planned = [line for line in lines[:first_step] if line.startswith("plan: ")]
    totals = sorted({int(m.group(1)) for m in map(re.compile(r"step \d+/(\d+) ").match, lines) if m})
    reasons = [line for line in lines if line.startswith("trainer.max_time=5s: ")]
    held = (
        proc.returncode == 0
        and any("trainer.max_time=5s" in line for line in planned)
        and len(totals) <= 2
        and len(reasons) == 1
    )
    return Outcome(
        proc.returncode, f"{len(planned)} plan lines first, totals {totals}, {len(reasons)} reason line", held
    )


def resume_keeps_explicit_decay_steps(ws: Workspace) -> Outcome:
    run = ws.fresh_run("decay-as-given")
    proc = ws.lmtrain("resume", str(run), "trainer.max_steps=6", "optim.decay_steps=4")
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lr_after = [e["train/lr"] for e in events if e.get("step", 0) > 4 and "train/lr" in e]
    said = "optim.decay_steps=4 keeps the learning-rate horizon as given" in _output(proc)
    held = proc.returncode == 0 and said and lr_after == [0.0, 0.0]
    return Outcome(proc.returncode, f"said so: {said}, lr after step 4: {lr_after}", held)


def _finetune_steps(ws: Workspace, name: str, *extra: str) -> tuple[subprocess.CompletedProcess, int | None, str]:
    run = ws.root / name
    proc = ws.lmtrain(
        "finetune",
        "task=ner",
        f"init={ws.root / 'finished'}",
        "trainer.progress=false",
        "trainer.eval_every=0",
        "trainer.preflight=false",
        *extra,
        f"hydra.run.dir={run}",
    )
    steps = json.loads((run / "summary.json").read_text())["steps"] if (run / "summary.json").is_file() else None
    plan = next((line.split(" - ", 1)[-1] for line in _output(proc).splitlines() if " - plan: " in line), "")
    return proc, steps, plan


def task_steps_follow_the_backbone(ws: Workspace) -> Outcome:
    proc, steps, plan = _finetune_steps(ws, "ner-default", "+task.max_steps_by_backbone.bert=3")
    held = proc.returncode == 0 and steps == 3 and "task=ner's default for a bert backbone" in plan
    return Outcome(proc.returncode, f"steps {steps}; {plan[:90] or last_line(proc)}", held)


def explicit_max_steps_wins(ws: Workspace) -> Outcome:
    proc, steps, plan = _finetune_steps(ws, "ner-explicit", "+task.max_steps_by_backbone.bert=3", "trainer.max_steps=2")
    held = proc.returncode == 0 and steps == 2 and plan.startswith("plan: 2 steps (trainer.max_steps)")
    return Outcome(proc.returncode, f"steps {steps}; {plan[:90] or last_line(proc)}", held)


def pretrain_without_steps(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.max_steps=null", f"hydra.run.dir={ws.root / 'nosteps'}")
    return refused(proc, "give trainer.max_steps=N")


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "no preset caps time": presets_cap_no_time,
    "a time budget states its plan, total moves once": budget_plans_once,
    "resume keeps an explicit optim.decay_steps": resume_keeps_explicit_decay_steps,
    "NER steps follow the backbone": task_steps_follow_the_backbone,
    "an explicit trainer.max_steps wins": explicit_max_steps_wins,
    "pretrain with trainer.max_steps=null": pretrain_without_steps,
}
