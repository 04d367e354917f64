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
from lmtrain.models.crf import LinearChainCRF
from lmtrain.models.families import ModelFamily
from lmtrain.models.protocol import NamedHeads
from lmtrain.tasks.backbone import Backbone, resolve_backbone
from lmtrain.tasks.base import Task, TaskModel

log = logging.getLogger(__name__)


def head_learning_rate(backbone: Backbone, head_lr: float | None, freeze_backbone: bool | None) -> float | None:
    """``finetune.head_lr``; unset, the backbone family's default (ELMo's over a frozen biLM; None = optim.lr)."""
    return backbone.family.default_head_lr(freeze_backbone) if head_lr is None else head_lr


def build_task_model(task: Task, cfg: FinetuneConfig, context: Any) -> TaskModel:
    """The backbone ``cfg.init`` names (a scratch tokenizer trained once, on rank 0) under ``task``'s head,
    frozen as ``finetune.*`` asks; seeded, so every rank builds the same weights.

    Args:
        task: the task, with its data read.
        cfg: the finetune config (``init``, ``model``, ``tokenizer``, ``finetune``, ``trainer.seed``).
        context: the run's :class:`lmtrain.training.assembly.RunContext`.
    """
    options = cfg.finetune
    backbone = resolve_backbone(
        cfg, task.causal, lambda: context.run_tokenizer(lambda: configured_tokenizer(cfg.tokenizer, task.texts()))
    )
    dropout = backbone.spec.dropout if options.head_dropout is None else options.head_dropout
    description = task.head_description(backbone, options, dropout) if task.head is not None else None
    torch.manual_seed(cfg.trainer.seed)
    model = context.build_model(lambda: build_finetune_model(task, backbone, description))
    freeze(model, options.freeze_backbone, options.freeze_layers)  # None: ELMo frozen, Transformers tuned
    return TaskModel(
        model,
        backbone.tokenizer,
        backbone.source,
        backbone.model_name,
        backbone.spec.max_positions,
        head_learning_rate(backbone, options.head_lr, options.freeze_backbone),
    )


def build_finetune_model(task: Task, backbone: Backbone, description: dict[str, Any] | None) -> NamedHeads:
    """The backbone's family's task model: its weights under ``task``'s head (see ``ModelFamily.task_model``).

    Tagging and classification drop the pretraining heads and add a new one; generation keeps the
    language-model head. ``description`` is the head's (``task.head_description``; None: no head of its
    own); a CRF is constrained to the task's valid transitions.
    """
    description = description or {}
    model = backbone.family.task_model(backbone.spec, backbone.state, task.head, description, backbone.source)
    if description.get("crf"):
        allowed = task.allowed_transitions()
        if allowed is not None:
            assert task.head is not None, "a head description is made for a task with a head"
            crf = model.heads[task.head].get_submodule("crf")
            assert isinstance(crf, LinearChainCRF), "a tagger described with a CRF holds one"
            crf.constrain(torch.tensor(allowed))
    return model


def freeze(model: NamedHeads, freeze_backbone: bool | None, freeze_layers: int) -> int:
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
    return {
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
    }
