"""Where a fine-tuning run's backbone comes from: a pretrain run, a checkpoint, a Hugging Face model, or scratch.

``init`` unset picks the newest compatible pretrain run of this project, under ``outputs/pretrain/`` of
the current directory (one with ``checkpoints/last`` whose attention matches the task: bidirectional
for tagging and classification, causal for generation); :func:`newest_compatible_run` says which, in
one line that the run states first and records. A task asks the backbone for a capability (token
features, or a causal LM head), never for a family; a family that is not ``chosen_without_init``
(ELMo) is used only when ``init`` names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from lmtrain.config.commands import FinetuneConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from lmtrain.models.capabilities import Capability, in_words
from lmtrain.models.families import ModelFamily
from lmtrain.models.protocol import ModelSpec
from lmtrain.plugs import plug_class

log = logging.getLogger(__name__)

PRETRAIN_ROOT = Path("outputs") / "pretrain"  # under the current directory: this project's pretrain runs


@dataclass
class InitChoice:
    """The pretrain run a fine-tuning run without ``init=`` starts from, and the line that says so."""

    run: Path
    line: str


@runtime_checkable
class BackboneSpec(ModelSpec, Protocol):
    """The sizes fine-tuning reads of a backbone: its dropout (a task head's default) and its longest input."""

    @property
    def dropout(self) -> float:
        """The backbone's dropout."""

    @property
    def max_positions(self) -> int | None:
        """The longest input in tokens (None: no limit)."""


@dataclass
class Backbone:
    """A backbone to fine-tune: its spec, weights (None = random), tokenizer, where it came from and its family."""

    spec: BackboneSpec
    state: dict[str, torch.Tensor] | None
    tokenizer: TextTokenizer
    model_name: str  # the model's preset name (bert, gpt, elmo ...; used by export and by compatible-run search)
    source: str
    family: type[ModelFamily]
    capabilities: frozenset[Capability] = frozenset()


def task_needs(causal: bool) -> Capability:
    """What a task asks of its backbone: a causal LM head (generation) or token features (tagging, classification)."""
    return Capability.CAUSAL_LM if causal else Capability.TOKEN_FEATURES


def _kind(causal: bool) -> str:
    return "causal (GPT)" if causal else "bidirectional (BERT / RoBERTa)"


def latest_run(accepts: Callable[[dict[str, Any]], bool], root: Path | None = None) -> Path | None:
    """The newest run under ``root`` (default: this project's ``outputs/pretrain``, relative to the current
    directory) with ``checkpoints/last`` whose ``model.json`` ``accepts``; a run folder or checkpoint linked in
    from elsewhere is not a candidate."""
    root = PRETRAIN_ROOT if root is None else root
    inside = root.resolve()
    best: tuple[float, Path] | None = None
    for last in root.glob(f"*/checkpoints/{ckpt.LAST}"):
        run = last.parent.parent.resolve()
        if not (run.is_relative_to(inside) and last.resolve().is_relative_to(run)) or not ckpt.is_checkpoint(last):
            continue
        try:
            meta = ckpt.read_model_meta(last)
        except UserError:  # a damaged run is not a candidate
            continue
        if not accepts(meta):
            continue
        stamp = last.resolve().stat().st_mtime
        if best is None or stamp > best[0]:
            best = (stamp, last.parent.parent)
    return best[1] if best else None


def newest_compatible_run(accepts: Callable[[dict[str, Any]], bool], kind: str, pretrain: str) -> InitChoice:
    """The newest pretrain run of this project whose ``model.json`` ``accepts`` (see :func:`latest_run`).

    Args:
        kind: what fits, in words (``bidirectional (BERT / RoBERTa)``).
        pretrain: the command that makes such a run (for the error when there is none).
    Raises:
        UserError: no such run, saying what to run first or which ``init=`` to give.
    """
    run = latest_run(accepts)
    if run is None:
        raise UserError(
            f"no pretrained backbone to fine-tune: no run under {PRETRAIN_ROOT.resolve()} has "
            f"checkpoints/last with a {kind} model. Run `{pretrain}` first (from this directory), or give "
            "init=<run dir, checkpoint, Hugging Face folder or Hub id>, or init=scratch to train from "
            "random weights on purpose."
        )
    meta = ckpt.read_model_meta(run / "checkpoints" / ckpt.LAST)
    return InitChoice(
        run,
        f"init not given: fine-tuning the newest {kind} pretrain run of this project, {run} "
        f"({meta.get('model_name', meta.get('family'))}, step {meta.get('step', '?')}); give "
        "init=<run, checkpoint or Hugging Face model> to choose another, or init=scratch",
    )


def has_capability(meta: dict[str, Any], need: Capability) -> bool:
    """Whether a candidate run's model has ``need`` and its family may be chosen without ``init=`` (a family this
    process has not imported is no candidate: the scan runs no code named in a run folder)."""
    family = ModelFamily.registry.get(str(meta.get("family")))
    return family is not None and family.chosen_without_init and need in family.model_capabilities(meta)


def newest_pretrain_run(causal: bool) -> InitChoice:
    """The newest pretrain run of this project whose model has what a task of ``causal`` attention needs."""
    need = task_needs(causal)
    return newest_compatible_run(lambda meta: has_capability(meta, need), _kind(causal), need.example)


def from_checkpoint(path: str | Path) -> Backbone:
    """The backbone of an lmtrain run or checkpoint, a Hugging Face folder or a Hub id."""
    from lmtrain.models.loading import load_checkpoint

    model, tokenizer, meta = load_checkpoint(path, "cpu", key="init")
    family = ModelFamily.of(meta)
    state = family.task_backbone(model, meta, f"init={path}")
    return Backbone(
        _backbone_spec(model.spec, f"init={path}"),
        state,
        tokenizer,
        meta.get("model_name") or family.name,
        meta.get("source", str(path)),
        family,
        family.model_capabilities(meta),
    )


def _from_scratch(cfg: FinetuneConfig, tokenizer: TextTokenizer) -> Backbone:
    family = plug_class(cfg.model, "model", ModelFamily)(cfg.model)
    spec = family.build(tokenizer, (), 0).spec  # the weights stay random: the task model draws its own, seeded
    log.info(
        "init=scratch: random %s backbone, tokenizer %s",
        cfg.model.name,
        f"from {cfg.tokenizer.path}" if cfg.tokenizer.path else "trained on the task's training text",
    )
    return Backbone(
        _backbone_spec(spec, f"model={cfg.model.name}"),
        None,
        tokenizer,
        cfg.model.name,
        "scratch (random weights)",
        type(family),
        family.config_capabilities(),
    )


def _backbone_spec(spec: ModelSpec, where: str) -> BackboneSpec:
    """``spec``, refused with a clear error when it lacks what fine-tuning reads (a family of your own)."""
    if not isinstance(spec, BackboneSpec):
        raise UserError(
            f"{where}: its {type(spec).__name__} has no dropout and max_positions, which fine-tuning "
            "reads of a backbone; give the family's spec both (max_positions None: no limit)."
        )
    return spec


def resolve_backbone(cfg: FinetuneConfig, causal: bool, scratch_tokenizer: Callable[[], TextTokenizer]) -> Backbone:
    """The backbone ``cfg.init`` names, checked to suit a task that needs ``causal`` attention.

    Args:
        cfg: the finetune config (``init``, and ``model`` / ``tokenizer`` for init=scratch).
        causal: whether the task needs a causal LM (generation) or a bidirectional encoder.
        scratch_tokenizer: the tokenizer of init=scratch (trained on the task's text), called only then.
    Raises:
        UserError: no pretrained run found, a path that is not a model, or a backbone of the wrong kind.
    """
    init = cfg.init
    if init in (None, "", "auto"):  # the command chooses first, so that its first line says which
        init = str(newest_pretrain_run(causal).run)
    backbone = _from_scratch(cfg, scratch_tokenizer()) if init == "scratch" else from_checkpoint(init)
    need = task_needs(causal)
    if need not in backbone.capabilities:
        raise UserError(
            f"this task needs {need.words}, but init={init or backbone.source} holds a model of the "
            f"{backbone.family.name} family ({backbone.model_name}), which has "
            f"{in_words(backbone.capabilities)}; pretrain a fitting one (`{need.example}`) or pass "
            "init=<a fitting run or Hugging Face model>."
        )
    return backbone
