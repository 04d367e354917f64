"""Masked-token filling: the most likely vocabulary entries at each mask token of a masked LM's input."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.language_model import LanguageModel

# How users may spell the mask token, whatever the tokenizer's own spelling is.
MASK_SPELLINGS = ("[MASK]", "<mask>")


@dataclass(frozen=True)
class Candidate:
    """One prediction for a mask token.

    Attributes:
        token: the vocabulary entry (e.g. ``##ing`` or ``Ġfire``).
        text: how it reads when decoded (e.g. `` fire``).
        token_id: its id.
        prob: its probability under the model.
    """

    token: str | None  # None for an id past the tokenizer's vocabulary (a checkpoint's larger output layer)
    text: str
    token_id: int
    prob: float


def with_mask_token(text: str, mask_token: str) -> str:
    """``text`` with every accepted mask spelling ([MASK], <mask>) replaced by ``mask_token``."""
    for spelling in MASK_SPELLINGS:
        if spelling != mask_token:
            text = text.replace(spelling, mask_token)
    return text


def encode_for_mask(tokenizer: TextTokenizer, text: str, mask_id: int) -> list[int]:
    """Ids of ``text`` with special tokens; a lone space token before a mask is dropped.

    Byte-level BPE splits "The <mask>" into "The", "Ġ", "<mask>", whereas in training the mask
    replaced a whole "Ġword" token: without the stray space the input looks like training data.
    """
    ids = tokenizer.tokenizer.encode(text).ids
    kept: list[int] = []
    for i, token_id in enumerate(ids):
        next_is_mask = i + 1 < len(ids) and ids[i + 1] == mask_id
        if next_is_mask and token_id != mask_id and not tokenizer.decode([token_id]).strip():
            continue
        kept.append(token_id)
    return kept


@torch.no_grad()
def fill_mask(model: LanguageModel, tokenizer: TextTokenizer, text: str, top_k: int = 5) -> list[list[Candidate]]:
    """The most likely tokens at each mask token of ``text``.

    Args:
        model: a LanguageModel with an ``mlm`` head (in eval mode).
        tokenizer: its tokenizer; special tokens are added the way the model was trained.
        text: text with one or more mask tokens, spelt [MASK] or <mask>.
        top_k: candidates per mask.
    Returns:
        For each mask, in text order, ``top_k`` candidates sorted by falling probability. Special
        tokens are never candidates; probabilities are the model's over the whole vocabulary.
    """
    if "mlm" not in model.heads:
        raise UserError(f"filling masks needs a masked LM head (mlm); this model has {model.head_names}.")
    mask_id = tokenizer.id("mask")
    ids = encode_for_mask(tokenizer, with_mask_token(text, tokenizer.roles["mask"]), mask_id)
    where = [i for i, token_id in enumerate(ids) if token_id == mask_id]
    if not where:
        raise UserError(
            f"the prompt {text!r} has no mask token; write [MASK] (or <mask>) where a word should be predicted."
        )
    if len(ids) > model.spec.max_positions:
        raise UserError(
            f"the prompt has {len(ids)} tokens but the model covers {model.spec.max_positions} positions; shorten it."
        )
    device = next(model.parameters()).device
    hidden = model.backbone(torch.tensor([ids], device=device))  # (1, T, D)
    probs = model.heads["mlm"](hidden[0, where]).float().softmax(dim=-1)  # (M, V)
    probs[:, tokenizer.special_ids] = -1.0  # never a candidate, but the others keep their probability
    top = probs.topk(min(top_k, probs.shape[-1] - len(tokenizer.special_ids)), dim=-1)
    results = []
    for values, indices in zip(top.values.tolist(), top.indices.tolist()):
        results.append(
            [
                Candidate(tokenizer.tokenizer.id_to_token(i), tokenizer.decode([i]), i, p)
                for p, i in zip(values, indices)
            ]
        )
    return results
