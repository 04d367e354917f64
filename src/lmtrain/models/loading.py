"""Rebuild a trained model and its tokenizer from a checkpoint directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmtrain import checkpoint_files as ckpt
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.families import ModelFamily
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.protocol import TrainedModel


def model_meta(model: TrainedModel, model_name: str, objective: str, tokenizer: TextTokenizer) -> dict[str, Any]:
    """The ``model.json`` content that lets :func:`load_checkpoint` rebuild ``model``."""
    return {
        "family": model.family,
        "model_name": model_name,
        "objective": objective,
        "spec": model.spec.to_dict(),
        "heads": model.pretraining_heads,
        "task_heads": model.task_heads,
        "tokenizer_roles": tokenizer.roles,
    }


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", key: str = "ckpt",
                    families: tuple[str, ...] = ("transformer",)
                    ) -> tuple[LanguageModel, TextTokenizer, dict[str, Any]]:
    """Model (in eval mode, on ``device``), tokenizer and ``model.json`` of a run or checkpoint.

    Args:
        path: a run directory or a checkpoint directory.
        device: where to put the model.
        key: the config key that named ``path`` (for error messages).
        families: model families the caller can use (``transformer``, ``elmo``, ``albef``).
    """
    checkpoint = ckpt.resolve_checkpoint(path, key)
    meta = ckpt.read_model_meta(checkpoint)
    if meta.get("family") not in families:
        raise UserError(f"{key}={path} holds a {meta.get('family')} model, which this command does not load; it "
                        f"loads {' and '.join(families)} models.")
    model = ModelFamily.named(meta["family"]).from_meta(meta)
    ckpt.load_weights(model, checkpoint)
    return model.to(device).eval(), checkpoint_tokenizer(checkpoint, meta), meta


def checkpoint_tokenizer(checkpoint: Path, meta: dict[str, Any] | None = None) -> TextTokenizer:
    """The tokenizer a checkpoint was trained with (its own copy, else its run's ``tokenizer.json``)."""
    meta = meta if meta is not None else ckpt.read_model_meta(checkpoint)
    tokenizer_file = checkpoint / ckpt.TOKENIZER
    if not tokenizer_file.exists():
        tokenizer_file = checkpoint.parent.parent / ckpt.TOKENIZER
    return TextTokenizer.from_file(tokenizer_file, meta["tokenizer_roles"])
