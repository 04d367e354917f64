"""Learning-rate schedules: warmup, decay, and a horizon of their own."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lmtrain.config import OptimConfig
from lmtrain.training.optim import build_optimizer, build_scheduler


def _lrs(cfg: OptimConfig, max_steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, max_steps)
    lrs = []
    for _ in range(max_steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return lrs


def test_linear_decay_reaches_the_floor_at_max_steps():
    lrs = _lrs(OptimConfig(lr=1.0, warmup_steps=2, min_lr_ratio=0.1), 10)
    assert lrs[:2] == [0.5, 1.0] and lrs[2] == 1.0
    assert lrs == sorted(lrs[:2]) + sorted(lrs[2:], reverse=True)
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * (1 / 8))


def test_a_longer_run_with_the_old_horizon_follows_the_old_schedule_then_stays_at_the_floor():
    short = _lrs(OptimConfig(lr=1.0, warmup_ratio=0.25, min_lr_ratio=0.1), 8)
    extended = _lrs(OptimConfig(lr=1.0, warmup_ratio=0.25, min_lr_ratio=0.1, decay_steps=8), 12)
    assert extended[:8] == short  # the warmup and the decay already done are not bent
    assert extended[8:] == [pytest.approx(0.1)] * 4


def _trained(cfg: OptimConfig, horizon: int, steps: int) -> tuple[dict, dict]:
    """Optimizer and scheduler state after ``steps`` steps of a schedule planned over ``horizon``."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, horizon)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer.state_dict(), scheduler.state_dict()


def _restored(cfg: OptimConfig, horizon: int, saved: tuple[dict, dict]) -> tuple[torch.optim.Optimizer, object]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, horizon)
    optimizer.load_state_dict(saved[0])  # the trainer's order: optimizer, then scheduler
    scheduler.load_state_dict(saved[1])
    return optimizer, scheduler


def test_a_longer_resumed_run_continues_the_schedule_to_its_new_horizon():
    cfg = OptimConfig(lr=1.0, warmup_steps=2, min_lr_ratio=0.0)
    saved = _trained(cfg, 8, 8)  # a finished run: its learning rate reached the floor
    optimizer, scheduler = _restored(cfg, 16, saved)
    used = []
    for _ in range(8):  # steps 9-16, each with the rate the optimizer holds when it steps
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert used[0] == pytest.approx(1 - 6 / 14) and used[0] > 0  # where the 16-step schedule stands at step 9
    assert used == sorted(used, reverse=True) and used[-1] == pytest.approx(1 / 14)
    assert scheduler.get_last_lr()[0] == 0.0  # the floor, at the new horizon


def test_a_resumed_run_with_its_own_horizon_keeps_the_saved_rates_exactly():
    cfg = OptimConfig(lr=3e-4, warmup_ratio=0.1, schedule="cosine", min_lr_ratio=0.1)
    saved = _trained(cfg, 20, 7)
    optimizer, scheduler = _restored(cfg, 20, saved)
    assert optimizer.param_groups[0]["lr"] == saved[0]["param_groups"][0]["lr"]
    assert scheduler.get_last_lr() == saved[1]["_last_lr"]


def test_adamw_on_cpu_is_the_fused_step_and_matches_the_multi_tensor_one():
    """The fused step reads memory once per tensor (fine-tuning steps were half optimizer); same updates."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    reference = [p.detach().clone().requires_grad_() for p in model.parameters()]
    optimizer = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.0), torch.device("cpu"))
    assert all(group["fused"] for group in optimizer.param_groups)
    multi = torch.optim.AdamW(reference, lr=1e-2, weight_decay=0.0, foreach=True)
    for _ in range(3):
        for p, q in zip(model.parameters(), reference):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        optimizer.step()
        multi.step()
    for p, q in zip(model.parameters(), reference):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


_WITHOUT_THEN_WITH_DYNAMO = """
import sys
import torch
from lmtrain.config import OptimConfig
from lmtrain.training.optim import build_optimizer

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
start = [p.detach().clone() for p in model.parameters()]
optimizer = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.1), torch.device("cpu"))
steps = []
optimizer.register_step_pre_hook(lambda *_: steps.append(1))
grads = [[torch.randn_like(p) for p in model.parameters()] for _ in range(4)]

def step(opt, params, g):
    for p, q in zip(params, g):
        p.grad = q.clone()
    opt.step()
    opt.zero_grad(set_to_none=True)

for g in grads[:2]:
    step(optimizer, list(model.parameters()), g)
optimizer.load_state_dict(optimizer.state_dict())
print("dynamo before:", "torch._dynamo" in sys.modules)

reference_model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
with torch.no_grad():
    for p, s in zip(reference_model.parameters(), start):
        p.copy_(s)
groups = [{"params": [p for p in reference_model.parameters() if p.dim() >= 2], "weight_decay": 0.1, "lr": 1e-2},
          {"params": [p for p in reference_model.parameters() if p.dim() < 2], "weight_decay": 0.0, "lr": 1e-2}]
reference = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.999), eps=1e-6, fused=True)  # loads torch._dynamo
for g in grads[:2]:
    step(reference, list(reference_model.parameters()), g)
print("dynamo after:", "torch._dynamo" in sys.modules)
for g in grads[2:]:
    step(optimizer, list(model.parameters()), g)
    step(reference, list(reference_model.parameters()), g)
optimizer.load_state_dict(optimizer.state_dict())
same = all(torch.equal(p, q) for p, q in zip(model.parameters(), reference_model.parameters()))
mine, theirs = optimizer.state_dict(), reference.state_dict()
same_state = mine["param_groups"] == theirs["param_groups"] and all(
    torch.equal(mine["state"][i][k], theirs["state"][i][k]) for i in theirs["state"] for k in theirs["state"][i]
)
print("same weights:", same, "same state:", same_state, "hook calls:", len(steps))
"""


def test_the_optimizer_loads_no_dynamo_until_something_does_and_steps_as_torchs_adamw(tmp_path):
    """Building, stepping, zeroing and saving the optimizer import no ``torch._dynamo`` (0.8 s of a 2-core run);
    once something loads it the optimizer runs torch's own wrappers; either way the updates, the state and
    the hooks are torch's AdamW's, bit for bit."""
    script = [sys.executable, "-c", _WITHOUT_THEN_WITH_DYNAMO]
    done = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dynamo before: False" in done.stdout
    assert "dynamo after: True" in done.stdout
    assert "same weights: True same state: True hook calls: 4" in done.stdout


def test_a_pytorch_without_the_private_step_decorator_gets_torchs_own_adamw(monkeypatch):
    """The direct steps lean on a private PyTorch name: where it is gone the optimizer is torch's AdamW, which
    still trains (only the ``torch._dynamo`` import comes back)."""
    import importlib

    from lmtrain.training import optim

    monkeypatch.delattr(importlib.import_module("torch.optim.optimizer"), "_use_grad_for_differentiable")
    assert optim._torch_step() is None
    monkeypatch.setattr(optim, "DIRECT_STEPS", False)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = build_optimizer(model, OptimConfig(lr=5e-2, weight_decay=0.0), torch.device("cpu"))
    assert type(optimizer) is torch.optim.AdamW
    inputs = torch.randn(32, 3)
    targets = inputs.sum(dim=1, keepdim=True)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
