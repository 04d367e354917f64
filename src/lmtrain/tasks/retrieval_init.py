"""Where a retrieval fine-tuning run's ALBEF comes from.

init unset      the latest `lmtrain pretrain model=albef` run under outputs/pretrain/
init=<ALBEF run or checkpoint>       every weight (the MLM heads are dropped)
init=<BERT run, Hugging Face BERT folder or Hub id>   the text and fusion encoders start from the BERT
    layers (cross-attention from random), the image encoder from random weights or from the
    ALBEF run ``task.vision_init``
init=scratch    random weights, a tokenizer trained on the captions
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmtrain.config.commands import FinetuneConfig
from lmtrain.config.models import AlbefConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.albef import AlbefModel, albef_spec_over, resolve_albef_spec
from lmtrain.models.capabilities import Capability
from lmtrain.models.families import ModelFamily, TransformerFamily
from lmtrain.tasks.backbone import InitChoice, from_checkpoint, has_capability, newest_compatible_run

log = logging.getLogger(__name__)


@dataclass
class RetrievalInit:
    """The model to fine-tune, its tokenizer, and where its weights came from."""

    model: AlbefModel
    tokenizer: TextTokenizer
    source: str


def load_albef(
    path: str | Path, key: str, device: torch.device | str = "cpu"
) -> tuple[AlbefModel, TextTokenizer, dict[str, Any]]:
    """The ALBEF model, tokenizer and ``model.json`` of the run or checkpoint ``path`` (given as ``key``)."""
    from lmtrain.models.loading import load_checkpoint

    loaded, tokenizer, meta = load_checkpoint(path, device, key=key, needs=Capability.IMAGE_TEXT)
    assert isinstance(loaded, AlbefModel), "IMAGE_TEXT (checked by load_checkpoint) is the ALBEF family's"
    return loaded, tokenizer, meta


def _from_albef(path: str) -> RetrievalInit:
    pretrained, tokenizer, _ = load_albef(path, "init")
    model = AlbefModel(pretrained.spec, ())
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith(("heads.", "momentum.mlm."))}
    model.load_state_dict(state)
    return RetrievalInit(model, tokenizer, f"{path} (ALBEF)")


def _load_vision(model: AlbefModel, vision_init: str | None) -> None:
    """The image encoder (and its projection) of the ALBEF run ``vision_init``, if given."""
    if not vision_init:
        return
    donor, _, _ = load_albef(vision_init, "task.vision_init")
    if donor.spec.vision != model.spec.vision:
        raise UserError(
            f"task.vision_init={vision_init} has an image encoder of other sizes ({donor.spec.vision}) "
            f"than model.* asks for ({model.spec.vision}); set model.image_size, patch_size and vision_* "
            "to the run's values."
        )
    model.visual.load_state_dict(donor.visual.state_dict())
    if donor.spec.embed_dim == model.spec.embed_dim:
        model.vision_proj.load_state_dict(donor.vision_proj.state_dict())


def _with_text_backbone(backbone, model_cfg: AlbefConfig, vision_init: str | None) -> RetrievalInit:
    """ALBEF whose text and fusion layers start from a BERT backbone (:class:`lmtrain.tasks.backbone.Backbone`)."""
    text = backbone.spec
    if text.causal:
        raise UserError(
            f"init={backbone.source} is a causal (GPT) model; ALBEF's text encoder needs a bidirectional "
            "one (BERT / RoBERTa): pass init=<BERT run or Hugging Face BERT folder>."
        )
    if not 1 <= model_cfg.fusion_layers < text.n_layers:
        raise UserError(
            f"model.fusion_layers={model_cfg.fusion_layers}: init={backbone.source} has {text.n_layers} "
            f"layers, so choose 1-{text.n_layers - 1} (ALBEF fuses in the last half: "
            f"model.fusion_layers={max(1, text.n_layers // 2)})."
        )
    model = AlbefModel(albef_spec_over(text, model_cfg), ())
    weights = {f"text.{k[len('backbone.') :]}": v for k, v in backbone.state.items() if k.startswith("backbone.")}
    result = model.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if k.startswith("text.") and ".cross" not in k]
    if missing or result.unexpected_keys:
        raise UserError(
            f"the weights of {backbone.source} do not fit a BERT text encoder (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})."
        )
    _load_vision(model, vision_init)
    model.sync_momentum()
    log.info(
        "init: text and fusion encoders from %s (cross-attention random), image encoder %s",
        backbone.source,
        f"from {vision_init}" if vision_init else "random",
    )
    return RetrievalInit(model, backbone.tokenizer, f"{backbone.source} (text) + {vision_init or 'random'} (image)")


def newest_albef_run() -> InitChoice:
    """The newest ALBEF pretrain run of this project (see :func:`newest_compatible_run`)."""
    return newest_compatible_run(
        lambda meta: has_capability(meta, Capability.IMAGE_TEXT), "ALBEF", Capability.IMAGE_TEXT.example
    )


def resolve_retrieval_init(cfg: FinetuneConfig, scratch_tokenizer: Callable[[], TextTokenizer]) -> RetrievalInit:
    """The ALBEF model ``cfg.init`` names (see the module docstring).

    Args:
        cfg: the finetune config (``init``, ``model.*`` for new parts, ``task.vision_init``, ``tokenizer``).
        scratch_tokenizer: the tokenizer of init=scratch (trained on the training captions), called only then.
    Raises:
        UserError: no ALBEF run to start from, or a path that is not a usable model.
    """
    init = cfg.init
    if init in (None, "", "auto"):  # the command chooses first, so that its first line says which
        init = str(newest_albef_run().run)
    if init == "scratch":
        tokenizer = scratch_tokenizer()
        torch.manual_seed(cfg.trainer.seed)
        spec = resolve_albef_spec(cfg.model, tokenizer.vocab_size, tokenizer.id("pad"))
        return RetrievalInit(AlbefModel(spec, ()), tokenizer, "scratch (random weights)")
    from lmtrain.models.loading import locate_model, read_meta

    source = locate_model(init, key="init")
    meta = read_meta(source)
    family = ModelFamily.of(meta)
    if Capability.IMAGE_TEXT in family.model_capabilities(meta):
        return _from_albef(init)
    if family is not TransformerFamily:  # ALBEF's text and fusion encoders are Transformer blocks: only those fit
        raise UserError(
            f"init={init} holds a {family.name} model; retrieval starts from ALBEF or a BERT-style encoder."
        )
    return _with_text_backbone(from_checkpoint(source), cfg.model, cfg.task.vision_init)
