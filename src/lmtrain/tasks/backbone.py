"""Where a fine-tuning run's backbone comes from: a pretrain run, a checkpoint, a Hugging Face model, or scratch.

``init`` unset picks the newest compatible pretrain run of this project, under ``outputs/pretrain/`` of
the current directory (one with ``checkpoints/last`` whose attention matches the task: bidirectional
for tagging and classification, causal for generation); :func:`newest_compatible_run` says which, in
one line that the run states first and records. An ELMo run is used only when ``init`` names it: its
features serve tagging and classification, never generation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lmtrain.files import checkpoints as ckpt
from lmtrain.config.commands import FinetuneConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.elmo import ElmoSpec
from lmtrain.models.spec import TransformerSpec, resolve_spec

log = logging.getLogger(__name__)

PRETRAIN_ROOT = Path("outputs") / "pretrain"  # under the current directory: this project's pretrain runs


@dataclass
class InitChoice:
    """The pretrain run a fine-tuning run without ``init=`` starts from, and the line that says so."""

    run: Path
    line: str


@dataclass
class Backbone:
    """A backbone to fine-tune: its spec, weights (None = random), tokenizer and where it came from."""

    spec: TransformerSpec | ElmoSpec
    state: dict[str, torch.Tensor] | None
    tokenizer: TextTokenizer
    model_name: str  # bert | roberta | gpt | elmo (used by export and by compatible-run search)
    source: str


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
        raise UserError(f"no pretrained backbone to fine-tune: no run under {PRETRAIN_ROOT.resolve()} has "
                        f"checkpoints/last with a {kind} model. Run `{pretrain}` first (from this directory), or give "
                        "init=<run dir, checkpoint, Hugging Face folder or Hub id>, or init=scratch to train from "
                        "random weights on purpose.")
    meta = ckpt.read_model_meta(run / "checkpoints" / ckpt.LAST)
    return InitChoice(run, f"init not given: fine-tuning the newest {kind} pretrain run of this project, {run} "
                           f"({meta.get('model_name', meta.get('family'))}, step {meta.get('step', '?')}); give "
                           "init=<run, checkpoint or Hugging Face model> to choose another, or init=scratch")


def newest_pretrain_run(causal: bool) -> InitChoice:
    """The newest pretrain run of this project whose Transformer has ``causal`` attention."""
    return newest_compatible_run(
        lambda meta: meta.get("family") == "transformer" and bool(meta["spec"].get("causal")) == causal,
        _kind(causal), "lmtrain pretrain model=gpt" if causal else "lmtrain pretrain model=bert")


def from_checkpoint(path: str | Path) -> Backbone:
    """The backbone of an lmtrain run or checkpoint (Transformer or ELMo), a Hugging Face folder or a Hub id."""
    from lmtrain.models.loading import load_checkpoint

    model, tokenizer, meta = load_checkpoint(path, "cpu", key="init", families=("transformer", "elmo"))
    if meta.get("task_heads") and meta["family"] == "elmo":
        raise UserError(f"init={path} is a fine-tuned ELMo tagger or classifier; start from the pretrained biLM "
                        "(init=<the `lmtrain pretrain model=elmo` run>).")
    return Backbone(model.spec, model.state_dict(), tokenizer, meta.get("model_name", "bert"),
                    meta.get("source", str(path)))


def _from_scratch(cfg: FinetuneConfig, tokenizer: TextTokenizer) -> Backbone:
    spec = resolve_spec(cfg.model, tokenizer.vocab_size, tokenizer.id("pad"))
    log.info("init=scratch: random %s backbone, tokenizer %s", cfg.model.name,
             f"from {cfg.tokenizer.path}" if cfg.tokenizer.path else "trained on the task's training text")
    return Backbone(spec, None, tokenizer, cfg.model.name, "scratch (random weights)")


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
    if init == "scratch":
        backbone = _from_scratch(cfg, scratch_tokenizer())
    else:
        backbone = from_checkpoint(init)
    if backbone.spec.causal != causal:
        need = "a causal language model (GPT) with an lm head" if causal else "a bidirectional encoder (BERT / RoBERTa)"
        have = "an ELMo biLM, whose features serve tagging and classification only" \
            if isinstance(backbone.spec, ElmoSpec) else \
            f"a {backbone.model_name} model with {_kind(backbone.spec.causal)} attention"
        raise UserError(f"this task needs {need}, but init={init or backbone.source} is {have}; pretrain a fitting one "
                        f"(`lmtrain pretrain model={'gpt' if causal else 'bert'}`) or pass init=<a fitting run or "
                        "Hugging Face model>.")
    return backbone
