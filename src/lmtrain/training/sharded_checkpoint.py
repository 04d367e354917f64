"""Sharded checkpoints (``trainer.checkpoint_format=sharded``): every rank writes its own shards, nothing is gathered.

The model and optimizer tensors go through ``torch.distributed.checkpoint`` (DCP) into ``sharded/``
inside the checkpoint: under FSDP each rank writes the shards it holds; under DDP each replicated
tensor is written once, by one of the ranks; a single process writes them all. Rank 0 adds the small
files (``model.json``, ``tokenizer.json``, ``trainer_state.pt`` without the optimizer). Everything is
written into rank 0's temporary directory, which rank 0 renames into place (and points ``last`` at)
only after every rank has finished, so no checkpoint ever lacks a rank's shards. Loading reshards:
a checkpoint written by N ranks resumes on M, FSDP or not.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmtrain.errors import UserError
from lmtrain.files.atomic import atomic_directory
from lmtrain.files.checkpoints import SHARDED, tied_names
from lmtrain.files.sharded import load_sharded, single_process_quietly
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.distributed import Distributed


def _model_state(model: nn.Module) -> dict[str, Any]:
    """Each rank's part of the weights (DTensor shards under FSDP), tied duplicates left out as on disk."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    duplicates = tied_names(model)
    return {name: tensor for name, tensor in get_model_state_dict(model).items() if name not in duplicates}


def _require_shared_folder(dist: Distributed, folder: Path) -> None:
    """Stop on every rank if some rank cannot see ``folder`` (rank 0 made it): the shards would be lost."""
    blind = [rank for rank, sees in enumerate(dist.gather(folder.is_dir())) if not sees]
    if blind:
        raise UserError(
            f"trainer.checkpoint_format=sharded: rank(s) {blind} cannot see {folder}, which rank 0 made "
            "for the next checkpoint, so their shards would be lost. Put the run directory on a "
            "filesystem every node shares, or use trainer.checkpoint_format=full (rank 0 writes it all)."
        )


def save_sharded_checkpoint(
    dist: Distributed,
    checkpoints_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_meta: dict[str, Any],
    trainer_state: dict[str, Any],
    tokenizer_file: Path | None,
) -> Path:
    """Write ``step-<step>`` with every rank's shards, atomically, and point ``last`` at it. Every rank calls it.

    Args:
        dist: this process's place in the job.
        checkpoints_dir: the run's ``checkpoints/``.
        step: optimizer steps taken.
        model, optimizer: what the shards come from.
        model_meta: ``model.json``'s content.
        trainer_state: scheduler, RNG, scaler and data position (rank 0's is written).
        tokenizer_file: a ``tokenizer.json`` to copy in, or None.
    Returns:
        The checkpoint directory.
    """
    # imported here, as in sharding.py: DCP takes a second to import, and most runs never need it
    from torch.distributed.checkpoint import CheckpointException, FileSystemWriter, save
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    final = checkpoints_dir / f"step-{step}"
    try:
        with atomic_directory(final) if dist.is_main else contextlib.nullcontext() as made:
            folder = Path(dist.broadcast(str(made) if dist.is_main else None))
            _require_shared_folder(dist, folder)
            state = {"model": _model_state(model), "optimizer": get_optimizer_state_dict(model, optimizer)}
            with single_process_quietly(not dist.enabled):
                save(
                    state,
                    storage_writer=FileSystemWriter(folder / SHARDED),
                    process_group=dist.control_group,
                    no_dist=not dist.enabled,
                )
            if dist.is_main:
                ckpt.write_small_files(folder, step, model_meta, trainer_state, tokenizer_file)
            dist.barrier()  # every rank's shards are on disk before rank 0 publishes the folder
    except (OSError, RuntimeError, CheckpointException) as error:
        if not ckpt.out_of_space(error):
            raise
        raise ckpt.save_failed(checkpoints_dir, final, model, error) from None
    if dist.is_main:
        ckpt.point_last(checkpoints_dir, final)
    return final


def load_sharded_checkpoint(
    dist: Distributed, checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None
) -> None:
    """Give every rank its part of a sharded checkpoint's weights (and optimizer state, if ``optimizer``),
    whatever number of ranks wrote it. Every rank calls it."""
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    model_state = _model_state(model)
    state: dict[str, Any] = {"model": model_state}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    load_sharded(checkpoint / SHARDED, state, process_group=dist.control_group, no_dist=not dist.enabled)
    for name, kept in tied_names(model).items():
        model_state[name] = model_state[kept]
    set_model_state_dict(model, model_state)
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optimizer"])
