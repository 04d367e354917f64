"""The files of a checkpoint directory, and reading them back.

A checkpoint is a directory ``checkpoints/step-N/`` with ``model.safetensors`` (weights),
``model.json`` (how to rebuild the model), ``tokenizer.json`` and, when it can resume training,
``trainer_state.pt``; ``checkpoints/last`` and ``checkpoints/best`` are symlinks to such directories.
A sharded checkpoint (``trainer.checkpoint_format=sharded``) has ``sharded/`` instead of
``model.safetensors``: the model and optimizer shards every rank wrote (:mod:`lmtrain.files.sharded`),
which the readers here consolidate into full weights.
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
from lmtrain.files.sharded import METADATA, read_sharded_tensors
from lmtrain.files.tensors import load_safetensors_into, read_safetensors
from lmtrain.run_folder.provenance import note_run_plugs

WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
TRAINER_STATE = "trainer_state.pt"
TOKENIZER = "tokenizer.json"
SHARDED = "sharded"  # the folder of a sharded checkpoint's model and optimizer shards
LAST = "last"
BEST = "best"


def is_sharded(path: Path) -> bool:
    """Whether ``path`` is a sharded checkpoint (its weights in ``sharded/``, not ``model.safetensors``)."""
    return (path / SHARDED / METADATA).exists() and not (path / WEIGHTS).exists()


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a complete checkpoint directory (full or sharded)."""
    return ((path / WEIGHTS).exists() or is_sharded(path)) and (path / MODEL_META).exists()


def resolve_checkpoint(path: str | Path, key: str = "ckpt") -> Path:
    """A checkpoint directory from a checkpoint path or a run directory (its ``checkpoints/last``).

    Raises:
        UserError: ``path`` is neither, naming ``key``, the path and what was expected.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(
            f"{key}={path}: no such file or directory. Give a run directory "
            "(outputs/pretrain/...) or one of its checkpoints (.../checkpoints/step-N)."
        )
    for candidate in (path, path / "checkpoints" / LAST, path / LAST):
        if candidate.is_dir() and is_checkpoint(candidate):
            return candidate.resolve()
    raise UserError(
        f"{key}={path} is not a checkpoint: expected a directory with {WEIGHTS} (or {SHARDED}/) and "
        f"{MODEL_META} (checkpoints/step-N or checkpoints/last), or a run directory that has "
        "checkpoints/last."
    )


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
        raise UserError(
            f"{path} is unreadable ({error}); the checkpoint is damaged. Use another checkpoint "
            "(an older checkpoints/step-N)."
        ) from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} is not a JSON object; it was not written by lmtrain.")
    note_run_plugs(checkpoint)  # a plug of the run that does not import is then reported with its folder
    return meta


def tied_names(model: nn.Module) -> dict[str, str]:
    """Names of parameters that are another parameter (a tied output embedding) -> the name kept on disk.

    The kept name is the alphabetically first of each group, as ``safetensors.torch.save_model`` keeps.
    """
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return {name: sorted(names)[0] for names in groups.values() for name in names if name != sorted(names)[0]}


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """Load the checkpoint's weights into ``model`` (strict: every weight must match); a sharded one is
    consolidated in this process first."""
    if is_sharded(checkpoint):
        source = checkpoint / SHARDED
        missing, unexpected = _load_state(model, read_weights(checkpoint), source)
    else:
        source = checkpoint / WEIGHTS
        missing, unexpected = load_safetensors_into(model, source)
    if missing or unexpected:
        raise UserError(
            f"{source} does not fit this model (missing: {sorted(missing)[:5]}, "
            f"unexpected: {sorted(unexpected)[:5]}); was it written by a different model config?"
        )


def _load_state(model: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> tuple[list[str], list[str]]:
    """``model.load_state_dict(weights)`` with tied duplicates filled in; returns the missing and unexpected names."""
    weights = dict(weights)
    for name, kept in tied_names(model).items():
        if kept in weights:
            weights.setdefault(name, weights[kept])
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # shape mismatches: a checkpoint of another model size
        reason = " ".join(str(error).split())[:300]
        raise UserError(
            f"{source} does not fit this model ({reason}); it was written by a model of another "
            "configuration (size, vocabulary or heads). Use a checkpoint of this model."
        ) from None
    return list(result.missing_keys), list(result.unexpected_keys)


def read_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's full weights (tied duplicates appear once), consolidated from shards if it is sharded."""
    if is_sharded(checkpoint):
        return read_sharded_tensors(checkpoint / SHARDED, "model")
    return read_safetensors(checkpoint / WEIGHTS)
