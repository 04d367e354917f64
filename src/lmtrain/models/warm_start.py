"""Continued (domain-adaptive) pretraining: start a pretraining run from existing weights.

The model's dimensions and tokenizer come from the starting checkpoint (an lmtrain run or
checkpoint, a Hugging Face folder or a Hub id). Its pretraining heads are kept where the
objective uses them (``BertForPreTraining``'s MLM + NSP, ``*ForMaskedLM``'s MLM,
``GPT2LMHeadModel``'s LM head) and created fresh (the output layer tied to the embeddings) where
the checkpoint has only the encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability
from lmtrain.models.families import ModelFamily
from lmtrain.models.loading import load_checkpoint
from lmtrain.models.protocol import NamedHeads


@dataclass
class WarmStart:
    """A pretraining run's starting point.

    Attributes:
        model: the model, with exactly the heads the objective needs.
        tokenizer: the checkpoint's tokenizer.
        family: its model family.
        capabilities: what the model can do (an objective checks its own need against them).
        model_name: its preset name (bert, gpt ...: how export writes it).
        source: where it came from (for summary.json and the model card).
        new_heads: heads created here because the checkpoint had none of that name.
    """

    model: NamedHeads
    tokenizer: TextTokenizer
    family: str
    capabilities: frozenset[Capability]
    model_name: str
    source: str
    new_heads: list[str] = field(default_factory=list)


def warm_start(
    init: str, head_names: Sequence[str], key: str = "init", needs: Capability | Iterable[Capability] = ()
) -> WarmStart:
    """Load ``init`` and give it the pretraining heads ``head_names``.

    Args:
        needs: what the objective trains (the model must have it, see ``load_checkpoint``).
    Raises:
        UserError: a checkpoint that lacks ``needs``, does not load, or whose weights do not fit the rebuilt model.
    """
    loaded, tokenizer, meta = load_checkpoint(init, "cpu", key=key, needs=needs)
    family = ModelFamily.of(meta)
    kept = [h for h in head_names if h in loaded.heads]
    new_heads: list[str]
    if kept == list(head_names) and list(loaded.heads) == kept:  # exactly the heads needed: use it as it is
        model, new_heads = loaded, []
    else:
        model, new_heads = _with_heads(loaded, meta, head_names, kept, f"{key}={init}")
    model.train()
    return WarmStart(
        model,
        tokenizer,
        family.name,
        family.model_capabilities(meta),
        meta.get("model_name") or family.name,
        meta.get("source") or str(init),
        new_heads,
    )


def _with_heads(
    loaded: NamedHeads, meta: dict[str, Any], head_names: Sequence[str], kept: list[str], where: str
) -> tuple[NamedHeads, list[str]]:
    """``loaded``'s family rebuilt with exactly ``head_names``: its weights copied, missing heads left new."""
    model = ModelFamily.of(meta).from_meta({**meta, "heads": list(head_names), "task_heads": {}})
    wanted = set(model.state_dict())  # tied weights appear under each of their names here
    missing, _ = model.load_state_dict({k: v for k, v in loaded.state_dict().items() if k in wanted}, strict=False)
    new_heads = [h for h in head_names if h not in kept]
    stray = [k for k in missing if not any(k.startswith(f"heads.{h}.") for h in new_heads)]
    if stray:
        raise UserError(
            f"{where}: the checkpoint lacks weights the model needs ({', '.join(stray[:5])}"
            f"{' ...' if len(stray) > 5 else ''}); start from a complete checkpoint."
        )
    return model, new_heads


def conflicting_overrides(overrides: Sequence[str]) -> list[str]:
    """The ``model.*`` / ``tokenizer.*`` overrides among ``overrides`` (they cannot apply to a loaded model)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return [k for k in keys if k.startswith(("model.", "tokenizer."))]


def describe(start: WarmStart) -> dict[str, Any]:
    """What summary.json records about the starting point."""
    return {"init": start.source, **({"new_heads": start.new_heads} if start.new_heads else {})}
