"""The model a fine-tuning run trains: the backbone's weights plus a fresh task head, partly frozen if asked."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from lmtrain.config.commands import FinetuneConfig
from lmtrain.data.hf_tokenizer import configured_tokenizer
from lmtrain.errors import UserError
from lmtrain.models.elmo import ElmoSpec
from lmtrain.models.elmo_features import ElmoTaskModel, build_elmo_task_model
from lmtrain.models.language_model import LanguageModel
from lmtrain.tasks.backbone import Backbone, resolve_backbone
from lmtrain.tasks.base import Task, TaskModel

log = logging.getLogger(__name__)

# an ELMo task model is trained from scratch on fixed features: it needs a larger step than a
# pretrained Transformer being tuned (the task presets' optim.lr)
ELMO_HEAD_LR = 1.0e-2


def head_learning_rate(backbone: Backbone, head_lr: float | None, freeze_backbone: bool | None) -> float | None:
    """``finetune.head_lr``; unset, :data:`ELMO_HEAD_LR` over a frozen ELMo biLM and None (= optim.lr) otherwise."""
    if head_lr is None and isinstance(backbone.spec, ElmoSpec) and freeze_backbone is not False:
        log.info("ELMo: the task head learns at finetune.head_lr=%g (set finetune.head_lr to change it)", ELMO_HEAD_LR)
        return ELMO_HEAD_LR
    return head_lr


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
    dropout = backbone.spec.dropout if options.head_dropout is None else options.head_dropout
    description = task.head_description(backbone, options, dropout) if task.head is not None else None
    torch.manual_seed(cfg.trainer.seed)
    model = context.build_model(lambda: build_finetune_model(task, backbone, description))
    freeze(model, options.freeze_backbone, options.freeze_layers)  # None: ELMo frozen, Transformers tuned
    return TaskModel(model, backbone.tokenizer, backbone.source, backbone.model_name, backbone.spec.max_positions,
                     head_learning_rate(backbone, options.head_lr, options.freeze_backbone))


def _elmo_task_model(task: Task, backbone: Backbone, description: dict[str, Any]) -> ElmoTaskModel:
    """ELMo features (the pretrained biLM plus a scalar mix) under ``task``'s head.

    A classifier pools the mean of the tokens' features: ELMo has no [CLS] trained to summarise.
    """
    kind = "mean_pooled_classifier" if task.head_kind == "pooled_classifier" else task.head_kind
    return build_elmo_task_model(backbone.spec, {task.head: {**description, "kind": kind}}, backbone.state)


def build_finetune_model(task: Task, backbone: Backbone, description: dict[str, Any] | None) -> nn.Module:
    """A :class:`LanguageModel` (or :class:`ElmoTaskModel`) with the backbone's weights and ``task``'s head.

    Tagging and classification drop the pretraining heads and add a new one; generation keeps the
    language-model head. A classifier's dense layer starts from BERT's pretrained pooler (the NSP
    head's dense layer) when the backbone has one, as Hugging Face's BertForSequenceClassification does.
    ``description`` is the head's (``task.head_description``; None: no head of its own); a CRF is
    constrained to the task's valid transitions.
    """
    description = description or {}
    model = _elmo_task_model(task, backbone, description) if isinstance(backbone.spec, ElmoSpec) else \
        _transformer_task_model(task, backbone, description)
    if description.get("crf"):
        allowed = task.allowed_transitions()
        if allowed is not None:
            model.heads[task.head].crf.constrain(torch.tensor(allowed))
    return model


def _transformer_task_model(task: Task, backbone: Backbone, description: dict[str, Any]) -> LanguageModel:
    spec = backbone.spec
    model = LanguageModel(spec, ["lm"]) if task.head is None else LanguageModel(spec, [], {task.head: description})
    if backbone.state is None:
        return model
    wanted = {k: v for k, v in backbone.state.items() if k.startswith("backbone.") or
              (task.head is None and k.startswith("heads.lm."))}
    if task.head_kind == "pooled_classifier":
        wanted.update({k.replace("heads.nsp.dense.", f"heads.{task.head}.dense."): v
                       for k, v in backbone.state.items() if k.startswith("heads.nsp.dense.")})
    result = model.load_state_dict(wanted, strict=False)
    missing = [k for k in result.missing_keys if k.startswith("backbone.")]
    if missing or result.unexpected_keys:
        raise UserError(f"the weights of {backbone.source} do not fit its own spec (missing {missing[:5]}, "
                        f"unexpected {result.unexpected_keys[:5]}).")
    return model


def _freeze_elmo(model: ElmoTaskModel, freeze_backbone: bool | None, freeze_layers: int) -> int:
    if freeze_layers:
        raise UserError(f"finetune.freeze_layers={freeze_layers} applies to Transformer backbones; an ELMo "
                        "biLM is frozen whole (the default) or tuned whole (finetune.freeze_backbone=false).")
    if freeze_backbone is False:
        log.info("ELMo: the biLM is fine-tuned with the scalar mix and the head")
        return 0
    log.info("frozen: the ELMo biLM (the scalar mix and the head learn)")
    return model.backbone.freeze_bilm()


def freeze(model: nn.Module, freeze_backbone: bool | None, freeze_layers: int) -> int:
    """Stop gradients to the whole backbone, or to its embeddings and first ``freeze_layers`` blocks.

    ``freeze_backbone`` None means the family's usual way: ELMo's biLM is frozen (as in the paper,
    only the scalar mix and the task head learn), a Transformer is fine-tuned whole. A
    language-model head tied to the token embedding is frozen with it.
    Returns:
        The number of frozen parameters (tensors).
    """
    if isinstance(model, ElmoTaskModel):
        return _freeze_elmo(model, freeze_backbone, freeze_layers)
    n_layers = model.spec.n_layers
    if freeze_layers < 0 or freeze_layers > n_layers:
        raise UserError(f"finetune.freeze_layers={freeze_layers}: the backbone has {n_layers} layers; "
                        f"choose 0-{n_layers} (or finetune.freeze_backbone=true).")
    if freeze_backbone:
        modules = [model.backbone]
    elif freeze_layers:
        modules = [model.backbone.embeddings, *model.backbone.blocks[:freeze_layers]]
    else:
        return 0
    frozen = 0
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(False)
            frozen += 1
    log.info("frozen: %s", "the whole backbone" if freeze_backbone else f"embeddings and {freeze_layers} layer(s)")
    return frozen


def describe(model: nn.Module) -> dict[str, Any]:
    """Trainable and total parameter counts."""
    params = {id(p): p for p in model.parameters()}.values()
    return {"parameters": sum(p.numel() for p in params),
            "trainable_parameters": sum(p.numel() for p in params if p.requires_grad)}
