"""The training step as a module: the model and its objective in one forward, which DistributedDataParallel
or FSDP wraps (so gradients sync for all of it) and ``trainer.compile`` compiles."""

from __future__ import annotations

import torch
from torch import nn

from lmtrain.config.training import TrainerConfig
from lmtrain.objectives.base import Objective
from lmtrain.training.compile import maybe_compile
from lmtrain.training.distributed import Distributed
from lmtrain.training.sharding import fully_shard_step


class ObjectiveStep(nn.Module):
    """``objective(model, batch, norm)`` as a module, so DistributedDataParallel can wrap the call.

    DDP synchronises gradients for what runs inside its wrapped module's forward; objectives
    call ``model.backbone`` and ``model.heads`` directly, so the whole objective is the forward.
    """

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]):
        """The objective's output for ``batch``."""
        return self.objective(self.model, batch, norm)


def wrapped_step(model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, cfg: TrainerConfig,
                 dist: Distributed, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The training step sharded (FSDP) or DDP-wrapped, for its gradient sync and gathering, and the module
    that runs it (the same one compiled when ``trainer.compile`` asks)."""
    step = ObjectiveStep(model, objective)
    parallel_step = fully_shard_step(step, model, optimizer, cfg, dist, device) if dist.sharded \
        else dist.wrap(step, device)
    return parallel_step, maybe_compile(parallel_step, cfg.compile)
