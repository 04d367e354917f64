"""Where a fine-tuning run's backbone comes from: a pretrain run, a checkpoint, a Hugging Face model, or scratch.

``init`` unset picks the latest compatible pretrain run under ``outputs/pretrain/`` (one with
``checkpoints/last`` whose attention matches the task: bidirectional for tagging and
classification, causal for generation). An ELMo run is used only when ``init`` names it: its
features serve tagging and classification, never generation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lmtrain import checkpoint_files as ckpt
from lmtrain.config.commands import FinetuneConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.elmo import ElmoSpec
from lmtrain.models.spec import TransformerSpec, resolve_spec

log = logging.getLogger(__name__)

PRETRAIN_ROOT = Path("outputs") / "pretrain"


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


def latest_run(accepts: Callable[[dict[str, Any]], bool], root: Path = PRETRAIN_ROOT) -> Path | None:
    """The newest run under ``root`` with ``checkpoints/last`` whose ``model.json`` ``accepts``."""
    best: tuple[float, Path] | None = None
    for last in root.glob(f"*/checkpoints/{ckpt.LAST}"):
        if not ckpt.is_checkpoint(last):
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


def latest_pretrain_run(causal: bool, root: Path = PRETRAIN_ROOT) -> Path | None:
    """The newest run under ``root`` with ``checkpoints/last`` whose Transformer has ``causal`` attention."""
    return latest_run(lambda meta: meta.get("family") == "transformer" and bool(meta["spec"].get("causal")) == causal,
                      root)


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
    if init in (None, "", "auto"):
        run = latest_pretrain_run(causal)
        if run is None:
            command = "lmtrain pretrain model=gpt" if causal else "lmtrain pretrain model=bert"
            raise UserError(f"no pretrained backbone to fine-tune: no run under {PRETRAIN_ROOT.resolve()} has "
                            f"checkpoints/last with a {_kind(causal)} model. Run `{command}` first (from this "
                            "directory), or give init=<run dir, checkpoint, Hugging Face folder or Hub id>, or "
                            "init=scratch to train from random weights on purpose.")
        log.info("init: the latest compatible pretrain run, %s", run)
        backbone = from_checkpoint(str(run))
    elif init == "scratch":
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
