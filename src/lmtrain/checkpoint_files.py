"""The files of a checkpoint directory, and reading them back.

A checkpoint is a directory ``checkpoints/step-N/`` with ``model.safetensors`` (weights),
``model.json`` (how to rebuild the model), ``tokenizer.json`` and, when it can resume training,
``trainer_state.pt``; ``checkpoints/last`` and ``checkpoints/best`` are symlinks to such directories.
Writing them is :mod:`lmtrain.training.checkpoint`'s job; this module only names and reads them, so
everything that loads a trained model shares one format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmtrain.errors import UserError
from lmtrain.tensor_files import load_safetensors_into, read_safetensors

WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
TRAINER_STATE = "trainer_state.pt"
TOKENIZER = "tokenizer.json"
LAST = "last"
BEST = "best"


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a complete checkpoint directory."""
    return (path / WEIGHTS).exists() and (path / MODEL_META).exists()


def resolve_checkpoint(path: str | Path, key: str = "ckpt") -> Path:
    """A checkpoint directory from a checkpoint path or a run directory (its ``checkpoints/last``).

    Raises:
        UserError: ``path`` is neither, naming ``key``, the path and what was expected.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{key}={path}: no such file or directory. Give a run directory "
                        "(outputs/pretrain/...) or one of its checkpoints (.../checkpoints/step-N).")
    for candidate in (path, path / "checkpoints" / LAST, path / LAST):
        if candidate.is_dir() and is_checkpoint(candidate):
            return candidate.resolve()
    raise UserError(f"{key}={path} is not a checkpoint: expected a directory with {WEIGHTS} and {MODEL_META} "
                    "(checkpoints/step-N or checkpoints/last), or a run directory that has checkpoints/last.")


def best_checkpoint(path: str | Path, key: str = "ckpt") -> Path:
    """A run's ``checkpoints/best`` if it has one, else what :func:`resolve_checkpoint` finds at ``path``."""
    best = Path(path).expanduser() / "checkpoints" / BEST
    return best.resolve() if is_checkpoint(best) else resolve_checkpoint(path, key=key)


def read_model_meta(checkpoint: Path) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint; UserError naming the file if it is unreadable."""
    path = checkpoint / MODEL_META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is unreadable ({error}); the checkpoint is damaged. Use another checkpoint "
                        "(an older checkpoints/step-N).") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} is not a JSON object; it was not written by lmtrain.")
    return meta


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """Load ``model.safetensors`` into ``model`` (strict: every weight must match)."""
    missing, unexpected = load_safetensors_into(model, checkpoint / WEIGHTS)
    if missing or unexpected:
        raise UserError(f"{checkpoint / WEIGHTS} does not fit this model (missing: {sorted(missing)[:5]}, "
                        f"unexpected: {sorted(unexpected)[:5]}); was it written by a different model config?")


def read_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` (tied duplicates appear once)."""
    return read_safetensors(checkpoint / WEIGHTS)
