"""What both comparisons of `scripts/equal_time.py` share: the composed lmtrain config both sides read
their settings from, a `transformers` training loop stopped by a wall-clock budget with its learning
rate planned for that budget as lmtrain's trainer plans it, and lmtrain's own CLI run in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmtrain.cli.main import compose_command
from lmtrain.config import register_configs
from lmtrain.config.plug_nodes import config_objects
from lmtrain.config.training import OptimConfig
from lmtrain.errors import UserError
from lmtrain.training.limits import Limits
from lmtrain.training.optim import build_scheduler

# lmtrain's trainer re-measures its pace once per log window (trainer.log_every); the loop below does the same
REPLAN_EVERY = 10


@dataclass
class LoopResult:
    """What one side's timed training loop did.

    Attributes:
        steps: optimizer steps taken inside the budget.
        seconds: wall seconds of the loop (data loading included).
        tokens: real (not padding) tokens trained on.
    """

    steps: int
    seconds: float
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        """Real tokens trained on per wall second of the loop."""
        return self.tokens / max(self.seconds, 1e-9)


def side_row(loop: LoopResult, scores: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
    """One side's figures as a flat dict (for the tables and the JSON)."""
    return {
        "steps": loop.steps,
        "seconds": round(loop.seconds, 2),
        "tokens": loop.tokens,
        "tokens_per_s": loop.tokens_per_s,
        **scores,
        **extra,
    }


def load_average() -> float:
    """The machine's 1-minute load average (runnable processes, all users): on a shared machine the other
    jobs' load moves each side's speed, so each side records it when its training ends."""
    return os.getloadavg()[0]


def composed_config(command: str, overrides: list[str]) -> Any:
    """The typed config `lmtrain <command> <overrides>` runs with (the `transformers` side reads its settings here)."""
    register_configs()
    return config_objects(compose_command(command, overrides), command)


def forever(loader: Iterable) -> Iterator:
    """Batches of ``loader``, epoch after epoch (each epoch reshuffled by the loader's own sampler)."""
    while True:
        yield from loader


def hf_parameter_groups(
    model: torch.nn.Module, weight_decay: float, lr: float, head_prefix: str | None = None, head_lr: float | None = None
) -> list[dict[str, Any]]:
    """AdamW groups as `transformers`' Trainer makes them: no decay on biases and LayerNorm weights.

    Args:
        head_prefix, head_lr: parameters whose name starts with ``head_prefix`` learn at ``head_lr``.
    """
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        decays = not (name.endswith("bias") or "LayerNorm" in name)
        is_head = head_prefix is not None and head_lr is not None and name.startswith(head_prefix)
        groups.setdefault((decays, is_head), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": head_lr if is_head else lr}
        for (decays, is_head), params in groups.items()
    ]


def train_for_budget(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[dict],
    optim_cfg: OptimConfig,
    max_steps: int,
    budget_s: float,
    grad_clip: float,
) -> LoopResult:
    """Train ``model`` on ``batches`` until ``budget_s`` wall seconds (or ``max_steps``) have passed.

    The learning rate follows lmtrain's own plan (its ``LRPlan`` and ``Limits``): warmup and linear decay
    over ``max_steps`` at first, then, every ``REPLAN_EVERY`` steps, over the steps the measured pace fits
    into the budget, exactly as `lmtrain` plans ``trainer.max_time``, so both sides get the same schedule
    shape for the same number of steps.
    """
    scheduler = build_scheduler(optimizer, optim_cfg, max_steps)
    limits = Limits(max_steps, None, budget_s, batches_per_epoch=1, grad_accum=1)
    model.train()
    steps = tokens = 0
    started = time.perf_counter()
    while limits.stop_reason(steps, 0, time.perf_counter() - started) is None:
        batch = next(batches)
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
        tokens += int(batch["attention_mask"].sum())
        if steps % REPLAN_EVERY == 0:
            scheduler.plan.set_horizon(limits.planned_steps(steps, time.perf_counter() - started))
    return LoopResult(steps, time.perf_counter() - started, tokens)


def run_lmtrain(args: list[str], produces: Path) -> None:
    """Run ``python -m lmtrain <args>``, which must write ``produces``.

    Raises:
        UserError: the command failed or did not write it (the end of its output is in the message).
    """
    command = [sys.executable, "-m", "lmtrain", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not produces.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise UserError(f"`{' '.join(command[1:])}` failed (exit {done.returncode}); its last lines:\n{tail}")


def lmtrain_training_args(command: str, overrides: list[str], budget_s: float, max_steps: int) -> list[str]:
    """``lmtrain <command>`` stopped by ``budget_s`` alone: nothing else inside the timed loop (no evaluation
    or save before the end, no preflight), so its budget times the same work as the `transformers` loop."""
    return [
        command,
        *overrides,
        f"trainer.max_time={budget_s:g}s",
        f"trainer.max_steps={max_steps}",
        "trainer.max_epochs=null",
        "trainer.eval_every=0",
        "trainer.eval_at_start=false",
        "trainer.save_every=0",
        "trainer.preflight=false",
        "trainer.progress=false",
    ]


def export_to_hf(run_dir: Path, out: Path) -> Path:
    """``lmtrain export`` of a run as a Hugging Face folder (scored with the same code as the other side)."""
    run_lmtrain(
        ["export", f"ckpt={run_dir}", f"out={out}", f"hydra.run.dir={out.parent / (out.name + '-export-log')}"],
        out / "config.json",
    )
    return out


def lmtrain_for_budget(
    command: str, overrides: list[str], budget_s: float, max_steps: int, work: Path, name: str
) -> tuple[Path, dict[str, Any], LoopResult]:
    """`lmtrain <command> <overrides>` trained for ``budget_s`` seconds in ``work``, exported for `transformers`.

    Returns:
        (the exported Hugging Face folder, the run's summary.json, what its training loop did).
    """
    run_dir = work / f"lmtrain-{name}"
    run_lmtrain(
        [*lmtrain_training_args(command, overrides, budget_s, max_steps), f"hydra.run.dir={run_dir}"],
        run_dir / "summary.json",
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    loop = LoopResult(summary["steps"], summary["train_seconds"], summary["train_tokens"])
    return export_to_hf(run_dir, work / f"lmtrain-{name}-hf"), summary, loop
