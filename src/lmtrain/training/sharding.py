"""Fully sharded data parallelism (PyTorch FSDP2, ``fully_shard``) for models too large for one device.

Each Transformer block is one FSDP unit; the training-step module (``ObjectiveStep``) is the root
unit, holding the embeddings and heads, so the tied input / output embedding stays one parameter.
Every rank holds a 1/N shard of each parameter, gradient and optimizer state; a block's weights
are gathered just before it runs and freed after. With ``trainer.fsdp_replicas=R`` the mesh is 2-D
(HSDP): each parameter is sharded over the N/R ranks of a replica group (a node, usually) and
replicated across the R groups. With ``trainer.precision=bf16`` the blocks compute with bf16 weights
(:func:`precision_policies`). A model built on the meta device (:mod:`lmtrain.training.deferred_init`)
gets its initial weights once it is sharded.

With ``trainer.checkpoint_format=full`` checkpoints are gathered to full tensors on rank 0 (on the
CPU) and written exactly as a single process writes them; on resume every rank reads the full state
and keeps its own shard. ``sharded`` checkpoints skip the gather
(:mod:`lmtrain.training.sharded_checkpoint`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lmtrain.config.training import TrainerConfig
from lmtrain.errors import UserError
from lmtrain.files.checkpoints import tied_names
from lmtrain.training.deferred_init import ShardLayout, is_deferred, materialise
from lmtrain.training.distributed import Distributed

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules that become FSDP units below the root: the backbone's Transformer blocks."""
    blocks = getattr(getattr(model, "backbone", None), "blocks", None)
    if blocks is None:
        raise UserError(
            f"trainer.strategy=fsdp shards Transformer blocks, and a {type(model).__name__} has none; "
            "use trainer.strategy=ddp for this model."
        )
    return list(blocks)


def shard_layout(dist: Distributed, replicas: int | None) -> ShardLayout:
    """This rank's place along the shard dimension of the mesh :func:`fsdp_mesh` builds (ranks fill it row by row:
    replica group ``rank // shards``, shard ``rank % shards``).

    Raises:
        UserError: ``trainer.fsdp_replicas`` does not divide the number of processes.
    """
    replicas = replicas or 1
    if dist.world_size % replicas:
        raise UserError(
            f"trainer.fsdp_replicas={replicas} must divide the {dist.world_size} processes of this "
            "job (each replica group shards the model over the same number of ranks); use a divisor, "
            "usually the number of nodes."
        )
    shards = dist.world_size // replicas
    return ShardLayout(shards, dist.rank % shards)


def fsdp_mesh(cfg: TrainerConfig, dist: Distributed, device: torch.device):
    """The device mesh ``fully_shard`` gets: 1-D over every rank, or with ``trainer.fsdp_replicas`` 2-D
    ``("replicate", "shard")`` (HSDP: each parameter sharded inside a replica group, replicated across them)."""
    from torch.distributed.device_mesh import init_device_mesh

    layout = shard_layout(dist, cfg.fsdp_replicas)
    if cfg.fsdp_replicas is None:
        return init_device_mesh(device.type, (dist.world_size,))
    return init_device_mesh(
        device.type, (dist.world_size // layout.shards, layout.shards), mesh_dim_names=("replicate", "shard")
    )


def precision_policies(precision: str, reduce_fp32: bool | None) -> tuple[Any, Any]:
    """The ``MixedPrecisionPolicy`` of the blocks and of the root unit for ``trainer.precision``.

    bf16: each block's weights are gathered, and its forward and backward run, in bf16 (half the all-gather
    bytes and unsharded memory); a block's input is cast to bf16 too, so its norms see one dtype on every
    device. Gradients are reduced in bf16 (``trainer.fsdp_reduce_fp32`` unset or false: PyTorch's default,
    half the reduce-scatter bytes) or fp32 (true: sums over many ranks, and the accumulation over
    ``trainer.grad_accum`` micro-batches, which FSDP does in the reduction dtype, keep fp32 precision).
    The root unit (embeddings, heads, final norm) keeps fp32 weights and casts no input: it is gathered once
    per step, not per block; the embeddings are summed and the heads' norms run on fp32 weights, as under
    DDP; and the step's inputs include the exact target counts the loss is divided by.
    Autocast stays on around the step: the policy decides the weights' dtype, and autocast which ops run in
    bf16 (matrix products) and which in fp32 (softmax, cross-entropy, and on CUDA the norms), as under DDP,
    so the objectives' losses keep their fp32 reductions.
    fp32 and fp16 (autocast with a gradient scaler over fp32 weights): no policy.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision != "bf16":
        return MixedPrecisionPolicy(), MixedPrecisionPolicy()
    reduce = torch.float32 if reduce_fp32 else torch.bfloat16
    return (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=reduce),
        MixedPrecisionPolicy(reduce_dtype=reduce, cast_forward_inputs=False),
    )


def fully_shard_step(
    step: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: TrainerConfig,
    dist: Distributed,
    device: torch.device,
) -> nn.Module:
    """Shard ``model``'s blocks and then ``step`` (the module whose forward runs a training step) over
    :func:`fsdp_mesh` with :func:`precision_policies`; a model built on the meta device gets its initial
    weights here, each rank its own shards (:mod:`lmtrain.training.deferred_init`).

    ``fully_shard`` replaces parameters with sharded ones of the same names; the optimizer, built
    before, is pointed at the new parameters (it holds no state yet).
    """
    from torch.distributed.fsdp import fully_shard

    mesh = fsdp_mesh(cfg, dist, device)
    blocks, root = precision_policies(cfg.precision, cfg.fsdp_reduce_fp32)
    names = {id(p): name for name, p in step.named_parameters()}
    groups = [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh, mp_policy=blocks)
    fully_shard(step, mesh=mesh, mp_policy=root)
    if is_deferred(model):
        shard_mesh = mesh["shard"] if mesh.ndim == 2 else mesh
        expected = shard_layout(dist, cfg.fsdp_replicas)
        if (shard_mesh.size(), shard_mesh.get_local_rank()) != (expected.shards, expected.index):
            raise RuntimeError(
                f"the mesh puts rank {dist.rank} at shard {shard_mesh.get_local_rank()} of "
                f"{shard_mesh.size()}, the deferred initialisation at {expected}"
            )
        materialise(step, model, device)
    sharded = dict(step.named_parameters())
    for group, group_names in zip(optimizer.param_groups, groups):
        group["params"] = [sharded[name] for name in group_names]
    return step


@contextlib.contextmanager
def root_gathered(step: nn.Module, sharded: bool) -> Iterator[None]:
    """The root unit's weights (embeddings, heads) gathered on every rank while the block runs, if ``sharded``:
    objectives and tasks call the model's parts directly, not the sharded root's forward."""
    root: FSDPModule | None = None
    if sharded:
        from torch.distributed.fsdp import FSDPModule  # here: importing FSDP takes half a second of a 2-core CPU

        if not isinstance(step, FSDPModule):
            raise TypeError(f"root_gathered needs the fully_shard step, not {type(step).__name__}")
        root = step
        # the root's forward would set up FSDP's state; an evaluation before the first step must do it here, or
        # the first block to run takes itself for the root and the first training step fails
        root._get_fsdp_state()._lazy_init()
        root.unshard()
    try:
        yield
    finally:
        if root is not None:
            root.reshard()


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full weights on rank 0 (CPU), without tied duplicates; empty on other ranks. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    duplicates = tied_names(model)
    full: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):  # a model's state holds tensors only
            raise TypeError(f"the model state's {name} is a {type(value).__name__}, not a tensor")
        if name not in duplicates:
            full[name] = value.contiguous()
    return full


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Full optimizer state keyed by parameter name on rank 0 (CPU). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
) -> None:
    """Give every rank its shard of full ``weights`` (and ``optimizer_state``). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        ValueType,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    full: dict[str, ValueType] = dict(weights)
    for name, kept in tied_names(model).items():
        full.setdefault(name, full[kept])
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, full, options=options)
    if optimizer is not None and optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
