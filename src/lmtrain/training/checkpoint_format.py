"""Where a checkpoint's model and optimizer tensors go, and where they come back from, under every strategy.

``trainer.checkpoint_format=full`` (the default): whole tensors in ``model.safetensors`` and
``trainer_state.pt``, written by rank 0 (gathered to it first under FSDP), so a small model's
checkpoint is plain files any single process reads. ``sharded``: every rank writes its own shards,
nothing is gathered (:mod:`lmtrain.training.sharded_checkpoint`). Loading follows what the
checkpoint holds, not the setting, so a run may change format when it resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmtrain.files.checkpoints import is_sharded, load_weights, read_weights
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.distributed import Distributed
from lmtrain.training.sharded_checkpoint import load_sharded_checkpoint, save_sharded_checkpoint
from lmtrain.training.sharding import full_model_state, full_optimizer_state, load_full_state

FORMATS = ("full", "sharded")


class CheckpointFormat:
    """The model and optimizer side of a run's checkpoints.

    Args:
        name: full | sharded (``trainer.checkpoint_format``).
        model: the trained model (sharded in place under FSDP).
        optimizer: its optimizer.
        dist: this process's place in the job.
    """

    def __init__(self, name: str, model: nn.Module, optimizer: torch.optim.Optimizer, dist: Distributed):
        self.name, self.model, self.optimizer, self.dist = name, model, optimizer, dist

    def save(
        self,
        checkpoints_dir: Path,
        step: int,
        model_meta: dict[str, Any],
        trainer_state: dict[str, Any],
        tokenizer_file: Path | None,
    ) -> Path:
        """Write ``step-<step>`` (atomically) with ``trainer_state`` and point ``last`` at it. Every rank calls it."""
        if self.name == "sharded":
            return save_sharded_checkpoint(
                self.dist, checkpoints_dir, step, self.model, self.optimizer, model_meta, trainer_state, tokenizer_file
            )
        gathered = self.dist.sharded
        weights = full_model_state(self.model) if gathered else None  # collectives: every rank
        optimizer = full_optimizer_state(self.model, self.optimizer) if gathered else None
        if self.dist.is_main:
            state = {**trainer_state, "optimizer": optimizer if gathered else self.optimizer.state_dict()}
            ckpt.save_checkpoint(checkpoints_dir, step, self.model, model_meta, state, tokenizer_file, weights)
        return checkpoints_dir / f"step-{step}"

    def load(self, checkpoint: Path, trainer_state: dict[str, Any] | None = None) -> None:
        """The weights of ``checkpoint`` on every rank, and the optimizer's state too when ``trainer_state``
        (the checkpoint's own) is given. Every rank calls it; under FSDP each keeps its shard."""
        optimizer = self.optimizer if trainer_state is not None else None
        if is_sharded(checkpoint):
            load_sharded_checkpoint(self.dist, checkpoint, self.model, optimizer)
        elif self.dist.sharded:  # every rank reads the full state and keeps its shard
            load_full_state(
                self.model,
                optimizer,
                read_weights(checkpoint),
                trainer_state["optimizer"] if trainer_state is not None else None,
            )
        else:
            load_weights(self.model, checkpoint)
            if trainer_state is not None:
                self.optimizer.load_state_dict(trainer_state["optimizer"])
