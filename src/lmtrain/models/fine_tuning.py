"""How a pretrained backbone becomes the model a fine-tuning run trains: its weights loaded under a new
task head, and the parts ``finetune.freeze_backbone`` / ``freeze_layers`` freeze. The model families
(:mod:`lmtrain.models.families`) call these."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from lmtrain.errors import UserError
from lmtrain.models.protocol import ModelSpec, NamedHeads

log = logging.getLogger(__name__)


def load_backbone_weights(model: nn.Module, wanted: Mapping[str, Any], source: str) -> None:
    """Load ``wanted`` into ``model`` (its other heads stay new).

    Raises:
        UserError: a backbone weight missing, or a weight the model has no place for.
    """
    result = model.load_state_dict(dict(wanted), strict=False)
    missing = [k for k in result.missing_keys if k.startswith("backbone.")]
    if missing or result.unexpected_keys:
        raise UserError(
            f"the weights of {source} do not fit its own spec (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})."
        )


def freeze_modules(modules: Sequence[nn.Module], what: str) -> int:
    """Stop gradients to every parameter of ``modules``; logs ``what`` was frozen; returns how many."""
    frozen = 0
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(False)
            frozen += 1
    log.info("frozen: %s", what)
    return frozen


def transformer_task_model(
    spec: ModelSpec, state: Mapping[str, Any] | None, head: str | None, description: Mapping[str, Any], source: str
) -> NamedHeads:
    """A :class:`LanguageModel` with the backbone's weights (``state``, None: random) and a new task head
    ``head`` (None: its ``lm`` head); a classifier's dense layer starts from the NSP head's pooler."""
    from lmtrain.models.language_model import LanguageModel
    from lmtrain.models.spec import TransformerSpec

    assert isinstance(spec, TransformerSpec), "a backbone's spec is its own family's"
    model = LanguageModel(spec, ["lm"]) if head is None else LanguageModel(spec, [], {head: dict(description)})
    if state is None:
        return model
    wanted = {
        k: v for k, v in state.items() if k.startswith("backbone.") or (head is None and k.startswith("heads.lm."))
    }
    if description.get("kind") == "pooled_classifier":
        wanted.update(
            {
                k.replace("heads.nsp.dense.", f"heads.{head}.dense."): v
                for k, v in state.items()
                if k.startswith("heads.nsp.dense.")
            }
        )
    load_backbone_weights(model, wanted, source)
    return model


def freeze_transformer(model: nn.Module, freeze_backbone: bool | None, freeze_layers: int) -> int:
    """Freeze a Transformer backbone whole, or its embeddings and first ``freeze_layers`` blocks; returns
    the number of frozen parameters (tensors)."""
    from lmtrain.models.language_model import LanguageModel

    assert isinstance(model, LanguageModel), "the family's task_model builds a LanguageModel"
    n_layers = model.spec.n_layers
    if freeze_layers < 0 or freeze_layers > n_layers:
        raise UserError(
            f"finetune.freeze_layers={freeze_layers}: the backbone has {n_layers} layers; "
            f"choose 0-{n_layers} (or finetune.freeze_backbone=true)."
        )
    if freeze_backbone:
        return freeze_modules([model.backbone], "the whole backbone")
    if freeze_layers:
        return freeze_modules(
            [model.backbone.embeddings, *model.backbone.blocks[:freeze_layers]],
            f"embeddings and {freeze_layers} layer(s)",
        )
    return 0
