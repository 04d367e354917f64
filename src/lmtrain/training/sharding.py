"""Fully sharded data parallelism (PyTorch FSDP2, ``fully_shard``) for models too large for one device.

Each Transformer block is one FSDP unit; the training-step module (``ObjectiveStep``) is the root
unit, holding the embeddings and heads, so the tied input / output embedding stays one parameter.
Every rank holds a 1/N shard of each parameter, gradient and optimizer state; a block's weights
are gathered just before it runs and freed after.

With ``trainer.checkpoint_format=full`` checkpoints are gathered to full tensors on rank 0 (on the
CPU) and written exactly as a single process writes them; on resume every rank reads the full state
and keeps its own shard. ``sharded`` checkpoints skip the gather
(:mod:`lmtrain.training.sharded_checkpoint`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lmtrain.checkpoint_files import tied_names
from lmtrain.errors import UserError

_FULL = dict(full_state_dict=True, cpu_offload=True)


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules that become FSDP units below the root: the backbone's Transformer blocks."""
    blocks = getattr(getattr(model, "backbone", None), "blocks", None)
    if blocks is None:
        raise UserError(f"trainer.strategy=fsdp shards Transformer blocks, and a {type(model).__name__} has none; "
                        "use trainer.strategy=ddp for this model.")
    return list(blocks)


def fully_shard_step(step: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
    """Shard ``model``'s blocks and then ``step`` (the module whose forward runs a training step).

    ``fully_shard`` replaces parameters with sharded ones of the same names; the optimizer, built
    before, is pointed at the new parameters (it holds no state yet).
    """
    from torch.distributed.fsdp import fully_shard

    names = {id(p): name for name, p in step.named_parameters()}
    groups = [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]
    for unit in shard_units(model):
        fully_shard(unit)
    fully_shard(step)
    sharded = dict(step.named_parameters())
    for group, group_names in zip(optimizer.param_groups, groups):
        group["params"] = [sharded[name] for name in group_names]
    return step


@contextlib.contextmanager
def root_gathered(step: nn.Module, sharded: bool) -> Iterator[None]:
    """The root unit's weights (embeddings, heads) gathered on every rank while the block runs, if ``sharded``:
    objectives and tasks call the model's parts directly, not the sharded root's forward."""
    if sharded:
        step.unshard()
    try:
        yield
    finally:
        if sharded:
            step.reshard()


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full weights on rank 0 (CPU), without tied duplicates; empty on other ranks. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(**_FULL))
    duplicates = tied_names(model)
    return {k: v.contiguous() for k, v in state.items() if k not in duplicates}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Full optimizer state keyed by parameter name on rank 0 (CPU). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(**_FULL))


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer | None, weights: dict[str, torch.Tensor],
                    optimizer_state: dict[str, Any] | None) -> None:
    """Give every rank its shard of full ``weights`` (and ``optimizer_state``). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    weights = dict(weights)
    for name, kept in tied_names(model).items():
        weights.setdefault(name, weights[kept])
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, weights, options=options)
    if optimizer is not None and optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
