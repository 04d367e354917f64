"""The training step as a module: the model and its objective in one forward, which DistributedDataParallel
or FSDP wraps (so gradients sync for all of it) and ``trainer.compile`` compiles; and the gradients of one
optimizer step's window of micro-batches."""

from __future__ import annotations

import torch
from torch import nn

from lmtrain.config.training import TrainerConfig
from lmtrain.objectives.base import Objective
from lmtrain.training.compile import CompiledStep, maybe_compile
from lmtrain.training.distributed import Distributed
from lmtrain.training.evaluation import add_sums
from lmtrain.training.precision import Precision
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


def wrapped_step(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    cfg: TrainerConfig,
    dist: Distributed,
    device: torch.device,
) -> tuple[nn.Module, nn.Module | CompiledStep]:
    """The training step sharded (FSDP) or DDP-wrapped, for its gradient sync and gathering, and the module
    that runs it (the same one compiled when ``trainer.compile`` asks)."""
    step = ObjectiveStep(model, objective)
    parallel_step = (
        fully_shard_step(step, model, optimizer, cfg, dist, device) if dist.sharded else dist.wrap(step, device)
    )
    return parallel_step, maybe_compile(parallel_step, cfg.compile)


def accumulate_gradients(
    window: list[dict[str, torch.Tensor]],
    objective: Objective,
    parallel_step: nn.Module,
    step_module: nn.Module | CompiledStep,
    dist: Distributed,
    precision: Precision,
    sums: dict[str, torch.Tensor],
) -> None:
    """Backpropagate every micro-batch of ``window``, each loss normalised by the whole window's targets on
    every rank (gradients sync on the last one only); adds the metric sums and the tokens to ``sums``."""
    local: dict[str, torch.Tensor] = {}
    for batch in window:
        add_sums(local, objective.count_targets(batch))
    norm = dist.sum(local)  # targets of the whole window on every rank
    # DDP averages gradients over ranks; each rank's loss is already divided by the global
    # target count, so scaling by the world size turns that average into the exact sum.
    scale = float(dist.world_size)
    for i, batch in enumerate(window):
        last = i == len(window) - 1
        with dist.gradient_sync(parallel_step, sync=last):
            with precision.autocast():
                out = step_module(batch, norm)
            loss = out.loss * scale if dist.enabled else out.loss
            if precision.scaler is not None:
                precision.scaler.scale(loss).backward()
            else:
                loss.backward()
        add_sums(sums, out.sums)
    add_sums(sums, {"tokens": local["tokens"]})
