"""The model a fine-tuning run trains: the backbone's weights plus a fresh task head, partly frozen if asked.

The backbone's family builds the task model, freezes it and picks the head's learning rate
(:class:`lmtrain.models.families.ModelFamily`'s ``task_model``, ``freeze``, ``default_head_lr``); nothing
here tests a family.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from lmtrain.config.commands import FinetuneConfig
from lmtrain.data.hf_tokenizer import configured_tokenizer
from lmtrain.errors import UserError
from lmtrain.models.families import ModelFamily
from lmtrain.models.heads import TAGGER_ENCODERS
from lmtrain.tasks.backbone import Backbone, resolve_backbone
from lmtrain.tasks.base import Task, TaskModel

log = logging.getLogger(__name__)


def head_learning_rate(backbone: Backbone, head_lr: float | None, freeze_backbone: bool | None) -> float | None:
    """``finetune.head_lr``; unset, the backbone family's default (ELMo's over a frozen biLM; None = optim.lr)."""
    return backbone.family.default_head_lr(freeze_backbone) if head_lr is None else head_lr


def tagger_options(task: Task, backbone: Backbone, task_encoder: str | None, crf: bool | None,
                   lstm_dim: int, class_weights: Any) -> dict[str, Any]:
    """The head description's ``encoder`` / ``lstm_dim`` / ``crf`` entries (empty for non-tagging tasks).

    ``task_encoder`` None is the family's usual (``ModelFamily.tagger_encoder``): ELMo's task biLSTM, as in
    the paper; a linear tagger (Hugging Face's) for Transformers. ``crf`` None is on with a biLSTM only.
    Raises:
        UserError: an unknown encoder, a biLSTM or CRF for a task that does not tag, or class
            weights with a CRF.
    """
    tagging = task.head_kind == "token_classifier"
    if task_encoder not in (None, *TAGGER_ENCODERS):
        raise UserError(f"finetune.task_encoder={task_encoder} is not supported; choose one of "
                        f"{', '.join(TAGGER_ENCODERS)}.")
    if not tagging:
        if task_encoder == "bilstm" or crf:
            key = "finetune.task_encoder=bilstm" if task_encoder == "bilstm" else "task.crf=true"
            raise UserError(f"{key} applies to tagging (task=ner), not task={task.name}; drop the override.")
        return {}
    encoder = task_encoder or backbone.family.tagger_encoder
    crf = encoder == "bilstm" if crf is None else crf
    if crf and class_weights not in (None, "none"):
        raise UserError(f"finetune.class_weights={class_weights} weights each word's loss, but with a CRF the loss "
                        "is a whole sentence's likelihood; set finetune.class_weights=none or task.crf=false.")
    if lstm_dim < 1:
        raise UserError(f"finetune.task_lstm_dim={lstm_dim} must be at least 1.")
    return {"encoder": encoder, "lstm_dim": lstm_dim, "crf": crf} if encoder == "bilstm" else \
        {"encoder": encoder, "crf": crf}


def build_task_model(task: Task, cfg: FinetuneConfig, context: Any) -> TaskModel:
    """The backbone ``cfg.init`` names (a scratch tokenizer trained once, on rank 0) under ``task``'s head,
    frozen as ``finetune.*`` asks; seeded, so every rank builds the same weights.

    Args:
        task: the task, with its data read.
        cfg: the finetune config (``init``, ``model``, ``tokenizer``, ``finetune``, ``trainer.seed``).
        context: the run's :class:`lmtrain.training.assembly.RunContext`.
    """
    options = cfg.finetune
    backbone = resolve_backbone(cfg, task.causal, lambda: context.run_tokenizer(
        lambda: configured_tokenizer(cfg.tokenizer, task.texts())))
    tagger = tagger_options(task, backbone, options.task_encoder, getattr(cfg.task, "crf", None), options.task_lstm_dim,
                            options.class_weights)
    torch.manual_seed(cfg.trainer.seed)
    model = context.build_model(lambda: build_finetune_model(task, backbone, options.head_dropout, tagger))
    freeze(model, options.freeze_backbone, options.freeze_layers)  # None: ELMo frozen, Transformers tuned
    return TaskModel(model, backbone.tokenizer, backbone.source, backbone.model_name, backbone.spec.max_positions,
                     head_learning_rate(backbone, options.head_lr, options.freeze_backbone))


def build_finetune_model(task: Task, backbone: Backbone, head_dropout: float | None,
                         tagger: dict[str, Any] | None = None) -> nn.Module:
    """The backbone's family's task model: its weights under ``task``'s head (see ``ModelFamily.task_model``).

    Tagging and classification drop the pretraining heads and add a new one; generation keeps the
    language-model head. ``tagger`` holds :func:`tagger_options`; a CRF is constrained to the task's
    valid transitions.
    """
    dropout = backbone.spec.dropout if head_dropout is None else head_dropout
    description = {"kind": task.head_kind, "n_classes": len(task.labels), "dropout": dropout, **(tagger or {})}
    model = backbone.family.task_model(backbone.spec, backbone.state, task.head, description, backbone.source)
    if description.get("crf"):
        allowed = task.allowed_transitions()
        if allowed is not None:
            model.heads[task.head].crf.constrain(torch.tensor(allowed))
    return model


def freeze(model: nn.Module, freeze_backbone: bool | None, freeze_layers: int) -> int:
    """Stop gradients to the whole backbone, or to its first ``freeze_layers`` layers, as its family does it.

    ``freeze_backbone`` None means the family's usual way: ELMo's biLM is frozen (as in the paper,
    only the scalar mix and the task head learn), a Transformer is fine-tuned whole.
    Returns:
        The number of frozen parameters (tensors).
    """
    return ModelFamily.named(model.family).freeze(model, freeze_backbone, freeze_layers)


def describe(model: nn.Module) -> dict[str, Any]:
    """Trainable and total parameter counts."""
    params = {id(p): p for p in model.parameters()}.values()
    return {"parameters": sum(p.numel() for p in params),
            "trainable_parameters": sum(p.numel() for p in params if p.requires_grad)}
