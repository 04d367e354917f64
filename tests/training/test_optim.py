"""Learning-rate schedules: warmup, decay, and a horizon of their own."""

from __future__ import annotations

import pytest
import torch

from lmtrain.config import OptimConfig
from lmtrain.training.optim import build_scheduler


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
