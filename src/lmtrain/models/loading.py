"""Rebuild a model and its tokenizer from wherever a user keeps it.

A name (``ckpt=`` / ``init=``) is a run directory, a checkpoint directory, a Hugging Face folder
(``save_pretrained``: config.json + weights + tokenizer), or a Hugging Face Hub id, resolved in the
local cache first (:mod:`lmtrain.hub`). Hugging Face BERT, RoBERTa and GPT-2 weights are imported
into lmtrain's model with the pretraining heads they carry (MLM, NSP, LM).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lmtrain.data.hf_tokenizer import load_hf_tokenizer
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from lmtrain.hub import describe_hub_model, resolve_source, snapshot_hub_id
from lmtrain.models.capabilities import Capability, either, in_words, missing
from lmtrain.models.checked_build import check_against_weights
from lmtrain.models.families import ModelFamily, TransformerFamily
from lmtrain.models.hf_interop import load_hf_folder
from lmtrain.models.hf_names import DEFAULT_OBJECTIVES, HF_MODEL_NAMES, HF_OBJECTIVES
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.protocol import NamedHeads, TrainedModel
from lmtrain.models.skip_init import weights_left_as_allocated


def model_meta(model: TrainedModel, model_name: str, objective: str, tokenizer: TextTokenizer) -> dict[str, Any]:
    """The ``model.json`` content that lets :func:`load_checkpoint` rebuild ``model`` (a family of your own is
    imported again from ``family_target``, its class)."""
    family = ModelFamily.registry.get(model.family)
    return {
        "family": model.family,
        **({"family_target": f"{family.__module__}.{family.__qualname__}"} if family else {}),
        "model_name": model_name,
        "objective": objective,
        "spec": model.spec.to_dict(),
        "heads": model.pretraining_heads,
        "task_heads": model.task_heads,
        "tokenizer_roles": tokenizer.roles,
    }


def is_hf_folder(path: Path) -> bool:
    """Whether ``path`` is a Hugging Face model folder (config.json + weights) rather than an lmtrain checkpoint."""
    return (path / "config.json").is_file() and not ckpt.is_checkpoint(path)


def locate_model(name: str | Path, key: str = "ckpt", best: bool = False) -> Path:
    """The checkpoint directory or Hugging Face folder that ``name`` names.

    Args:
        name: a run directory (its ``checkpoints/last``, or ``best`` with ``best=True``), a checkpoint
            directory, a Hugging Face folder, or a Hub id (``bert-base-uncased``, ``org/name@revision``).
        key: the config key that gave ``name`` (for error messages).
        best: prefer a run's ``checkpoints/best`` to its ``last``.
    Raises:
        UserError: ``name`` is none of these, or a Hub id neither cached nor downloadable.
    """
    path = resolve_source(str(name), key)
    if is_hf_folder(path):
        return path
    try:
        return ckpt.best_checkpoint(path, key) if best else ckpt.resolve_checkpoint(path, key)
    except UserError:  # an existing path that is no lmtrain checkpoint: say every kind of model we take
        raise UserError(
            f"{key}={name} is not a model: expected a run directory that has checkpoints/last, a "
            f"checkpoint directory ({ckpt.WEIGHTS} + {ckpt.MODEL_META}, e.g. checkpoints/step-N), a "
            "Hugging Face folder (config.json + model.safetensors + tokenizer), or a Hugging Face Hub "
            "id such as bert-base-uncased."
        ) from None


def read_meta(source: Path) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint, or the equivalent description of a Hugging Face folder's model."""
    if not is_hf_folder(source):
        return ckpt.read_model_meta(source)
    try:
        model_type = json.loads((source / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise UserError(
            f"{source / 'config.json'} is not a JSON object ({error}); expected a Hugging Face config.json."
        ) from None
    # a Hugging Face folder holds one of the Transformer architectures the HF name map knows
    return {
        "family": TransformerFamily.name,
        "model_name": HF_MODEL_NAMES.get(model_type, model_type),
        "hf_model_type": model_type,
    }


def load_hf_model(
    folder: Path, name: str | Path, key: str = "ckpt"
) -> tuple[LanguageModel, TextTokenizer, dict[str, Any]]:
    """Model, tokenizer and ``model.json``-style description of a Hugging Face BERT / RoBERTa / GPT-2 folder.

    Args:
        folder: the folder (a snapshot in the Hub cache, recorded as ``base_model``, or a local folder).
        name: what the user wrote (for error messages).
        key: the config key that gave ``name`` (for error messages).
    """
    model = load_hf_folder(folder)
    tokenizer = load_hf_tokenizer(folder)
    if tokenizer.vocab_size > model.spec.vocab_size:
        raise UserError(
            f"{key}={name}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{model.spec.vocab_size} embeddings; the tokenizer belongs to another model."
        )
    meta = read_meta(folder)
    hub = snapshot_hub_id(folder)
    meta.update(
        spec=model.spec.to_dict(),
        heads=model.pretraining_heads,
        task_heads={},
        tokenizer_roles=tokenizer.roles,
        source=describe_hub_model(hub) if hub else f"{folder} (Hugging Face)",
        objective=HF_OBJECTIVES.get(tuple(model.head_names), DEFAULT_OBJECTIVES.get(meta["model_name"])),
        **({"base_model": hub.repo} if hub else {}),
    )
    return model, tokenizer, meta


def load_checkpoint(
    path: str | Path,
    device: torch.device | str = "cpu",
    key: str = "ckpt",
    needs: Capability | Iterable[Capability] = (),
) -> tuple[NamedHeads, TextTokenizer, dict[str, Any]]:
    """Model (in eval mode, on ``device``), tokenizer and ``model.json`` of a run, checkpoint or Hugging Face model.

    Args:
        path: a run directory, a checkpoint directory, a Hugging Face folder or a Hub id (see
            :func:`locate_model`).
        device: where to put the model.
        key: the config key that named ``path`` (for error messages).
        needs: what the caller uses of the model: one capability, or alternatives of which the model
            must have one (empty: any model).
    Raises:
        UserError: the model lacks what ``needs`` asks (checked before its weights are read), or does not load.
    """
    checkpoint = locate_model(path, key)
    if is_hf_folder(checkpoint):
        hf_model, tokenizer, meta = load_hf_model(checkpoint, path, key)
        check_capabilities(meta, needs, f"{key}={path}")
        return hf_model.to(device).eval(), tokenizer, meta
    meta = read_meta(checkpoint)
    check_capabilities(meta, needs, f"{key}={path}")
    family = ModelFamily.of(meta)
    check_against_weights(family.from_meta, meta, checkpoint)  # a hand-altered model.json allocates nothing
    with weights_left_as_allocated():  # the strict load below replaces every weight
        model = family.from_meta(meta)
    ckpt.load_weights(model, checkpoint)
    return model.to(device).eval(), checkpoint_tokenizer(checkpoint, meta), meta


def model_capabilities(meta: dict[str, Any]) -> frozenset[Capability]:
    """What the model a ``model.json`` (or a Hugging Face folder's description) describes can do."""
    return ModelFamily.of(meta).model_capabilities(meta)


def check_capabilities(meta: dict[str, Any], needs: Capability | Iterable[Capability], where: str) -> None:
    """Refuse a model that lacks what ``needs`` asks for (one capability, or alternatives).

    Raises:
        UserError: naming the capability, what the model has, and which model has it.
    """
    lacking = missing(model_capabilities(meta), needs)
    if lacking:
        name = meta.get("model_name") or meta.get("family")
        raise UserError(
            f"{where} holds a model of the {meta.get('family')} family ({name}), which lacks "
            f"{either(lacking)} that this command needs; it has {in_words(model_capabilities(meta))}. "
            f"Give a model that has it (e.g. from `{lacking[0].example}`)."
        )


def checkpoint_tokenizer(checkpoint: Path, meta: dict[str, Any] | None = None) -> TextTokenizer:
    """The tokenizer a checkpoint was trained with (its own copy, else its run's ``tokenizer.json``)."""
    meta = meta if meta is not None else ckpt.read_model_meta(checkpoint)
    tokenizer_file = checkpoint / ckpt.TOKENIZER
    if not tokenizer_file.exists():
        tokenizer_file = checkpoint.parent.parent / ckpt.TOKENIZER
    return TextTokenizer.from_file(tokenizer_file, meta["tokenizer_roles"])
