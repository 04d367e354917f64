"""Decoding from causal language models with a key/value cache.

`generate_stream` is the core: it yields the token ids of every step as they are produced, for a
batch of prompts (left-padded, so every row's real tokens sit at positions 0, 1, ...). `generate`
collects them (optionally calling back per token) and `TextStream` turns ids into printable text pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import torch

from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.generation.sampling import Sampling, next_tokens, seeded_generator
from lmtrain.kernels import prepacked_linears
from lmtrain.models.heads import CausalLMHead
from lmtrain.models.language_model import LanguageModel

log = logging.getLogger(__name__)


def left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad ``prompts`` into one batch.

    Returns:
        input_ids (B, L), attention_mask (B, L) True on real tokens, position_ids (B, L) that
        count real tokens from 0 (padding gets position 0; it is never attended to).
    """
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        if len(prompt):
            ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = True
    positions = (mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, L)
    return ids.to(device), mask.to(device), positions.to(device)


def _room(prompts: Sequence[Sequence[int]], max_new_tokens: int, max_positions: int | None) -> int:
    """New tokens that fit in the model's position table (warns when fewer than asked)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise UserError("every prompt needs at least one token; give a non-empty prompt.")
    longest = max(len(p) for p in prompts)
    if max_positions is None:  # no position table (a recurrent model): no limit
        return max_new_tokens
    room = max_positions - longest
    if room <= 0:
        raise UserError(
            f"the prompt has {longest} tokens but the model covers {max_positions} positions "
            "(model.max_positions); shorten the prompt."
        )
    if max_new_tokens > room:
        log.warning(
            "max_new_tokens=%d would run past the model's %d positions after a %d-token prompt; "
            "generating at most %d tokens",
            max_new_tokens,
            max_positions,
            longest,
            room,
        )
    return min(max_new_tokens, room)


def _decoding_mask(prompts: Sequence[Sequence[int]], prompt_mask: torch.Tensor, steps: int) -> torch.Tensor | None:
    """The attention mask of the whole decode, (B, L + steps): the prompts' padding, then room for every
    new (real) token, so no step concatenates one; None when no prompt is padded (without padding
    SDPA keeps its fused causal path)."""
    batch_size, length = prompt_mask.shape
    if not any(len(p) < length for p in prompts):
        return None
    mask = torch.ones(batch_size, length + steps, dtype=torch.bool, device=prompt_mask.device)
    mask[:, :length] = prompt_mask
    return mask


def _check_generates(model: LanguageModel) -> None:
    """Refuse a model that cannot decode: generation needs a causal backbone and an ``lm`` head."""
    if "lm" not in model.heads or not model.spec.causal:
        raise UserError(
            f"generation needs a causal model with an lm head; this one has heads "
            f"{model.head_names} and causal={model.spec.causal}."
        )


@torch.no_grad()
def generate_stream(
    model: LanguageModel,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    eos_id: int | None = None,
    pad_id: int = 0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Iterator[list[int | None]]:
    """Decode a batch of prompts step by step, yielding each step's tokens as they are produced.

    Args:
        model: a LanguageModel with an ``lm`` head on a causal backbone (put it in eval mode).
        prompts: token ids of each prompt (at least one token each).
        max_new_tokens: tokens to generate at most (fewer if the model's positions run out).
        sampling: how the next token is chosen.
        eos_id: end-of-text id; a row stops after producing it (None = never stop early).
        pad_id: id used for left padding (masked out, so any id works).
        seed: seed of a private generator for sampling; ignored when ``generator`` is given.
        generator: random generator to draw from (lets several calls share one seeded stream).
        use_cache: keep keys/values of past positions; False recomputes the whole sequence each
            step (slow; exists to check the cache).
    Yields:
        One list per step with an id for every row, or None for rows that already stopped.
        The end-of-text token itself is yielded once, then the row yields None.
    """
    _check_generates(model)
    if not hasattr(model.backbone, "new_cache"):  # a family without a key/value cache: each step runs the prefix
        yield from _generate_uncached(
            model,
            prompts,
            max_new_tokens,
            sampling,
            eos_id,
            generator or seeded_generator(seed, next(model.parameters()).device),
        )
        return
    device = model.backbone.embeddings.token.weight.device
    steps = _room(prompts, max_new_tokens, model.spec.max_positions)
    yield from _generate_cached(
        model, prompts, steps, sampling, eos_id, pad_id, generator or seeded_generator(seed, device), use_cache
    )


def _generate_cached(
    model: LanguageModel,
    prompts: Sequence[Sequence[int]],
    steps: int,
    sampling: Sampling,
    eos_id: int | None,
    pad_id: int,
    generator: torch.Generator | None,
    use_cache: bool,
) -> Iterator[list[int | None]]:
    """:func:`generate_stream`'s loop for a backbone with a key/value cache, ``steps`` steps at most
    (``use_cache=False`` runs the whole left-padded batch again each step, to check the cache)."""
    backbone, head = model.backbone, model.heads["lm"]
    ids, prompt_mask, positions = left_pad(prompts, pad_id, backbone.embeddings.token.weight.device)  # (B, L) each
    batch_size, length = ids.shape
    mask = _decoding_mask(prompts, prompt_mask, steps)
    cache = backbone.new_cache(batch_size, length + steps) if use_cache else None
    done = [False] * batch_size
    step_ids, step_positions = ids, positions
    # Each decoding step reads every weight matrix for a few rows: on CPU, read a faster layout.
    weights = prepacked_linears(model, batch_size, (CausalLMHead,))  # the tied LM head is a plain projection too
    for step in range(steps):
        seen = length + step  # positions the model sees after this step's input
        step_mask = mask[:, :seen] if mask is not None else None
        with weights.applied():  # only around the model call: the caller may use the model between steps
            if use_cache:
                hidden = backbone(step_ids, step_mask, position_ids=step_positions, cache=cache)
            else:
                hidden = backbone(ids, step_mask, position_ids=positions)
            logits = head(hidden[:, -1])
        token = next_tokens(logits.float(), sampling, generator)  # (B,)
        chosen = token.tolist()  # the one host sync per step: the caller wants the ids now
        yield [None if stopped else tok for stopped, tok in zip(done, chosen)]
        if eos_id is not None:
            done = [stopped or tok == eos_id for stopped, tok in zip(done, chosen)]
        if all(done) or step == steps - 1:
            return
        # Rows that stopped keep decoding (their tokens are never shown), fed as they are.
        step_ids, step_positions = token[:, None], step_positions[:, -1:] + 1  # (B, 1) each
        if not use_cache:
            ids = torch.cat([ids, step_ids], dim=1)
            positions = torch.cat([positions, step_positions], dim=1)


def _generate_uncached(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    sampling: Sampling,
    eos_id: int | None,
    generator: torch.Generator | None,
) -> Iterator[list[int | None]]:
    """:func:`generate_stream` for a causal LM without a cache: every row's whole sequence runs again each step,
    unpadded (so its states never see padding)."""
    device = next(model.parameters()).device
    steps = _room(prompts, max_new_tokens, model.spec.max_positions)
    rows = [list(p) for p in prompts]
    done = [False] * len(rows)
    for _ in range(steps):
        logits = torch.cat(
            [model.heads["lm"](model.backbone(torch.tensor([row], device=device))[:, -1]) for row in rows]
        )  # (B, V)
        chosen = next_tokens(logits.float(), sampling, generator).tolist()
        yield [None if stopped else tok for stopped, tok in zip(done, chosen, strict=True)]
        if eos_id is not None:
            done = [stopped or tok == eos_id for stopped, tok in zip(done, chosen, strict=True)]
        if all(done):
            return
        for row, tok in zip(rows, chosen, strict=True):
            row.append(tok)


def generate(
    model: LanguageModel,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    eos_id: int | None = None,
    pad_id: int = 0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_token: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Generate a continuation of every prompt.

    Args:
        model, prompts, max_new_tokens, sampling, eos_id, pad_id, seed, generator, use_cache:
            as for :func:`generate_stream`.
        on_token: called as ``on_token(row, token_id)`` for each new token as soon as it exists
            (not for the end-of-text token).
    Returns:
        The new token ids of each prompt, without the end-of-text token.
    """
    outputs: list[list[int]] = [[] for _ in prompts]
    for step in generate_stream(model, prompts, max_new_tokens, sampling, eos_id, pad_id, seed, generator, use_cache):
        for row, token in enumerate(step):
            if token is None or token == eos_id:
                continue
            outputs[row].append(token)
            if on_token is not None:
                on_token(row, token)
    return outputs


class TextStream:
    """Turns token ids, as they arrive, into the new piece of text each one adds.

    Decoding token by token is wrong for sub-words and byte-level pieces, so the whole sequence is
    decoded each time and only the new suffix is returned.

    Args:
        tokenizer: the model's tokenizer.
        prefix_ids: ids already shown (the prompt); their text is not returned again.
    """

    def __init__(self, tokenizer: TextTokenizer, prefix_ids: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.ids = list(prefix_ids)
        self.offset = len(tokenizer.decode(self.ids))
        self.start = self.offset

    def push(self, token_id: int) -> str:
        """Add ``token_id``; return the text it completes ('' while a character is incomplete)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):  # a byte-level piece of a multi-byte character: wait for the rest
            return ""
        return self._advance(text)

    def flush(self) -> str:
        """The text still held back (an unfinished character), once no more tokens will come."""
        return self._advance(self.tokenizer.decode(self.ids))

    def _advance(self, text: str) -> str:
        piece = text[self.offset :]
        self.offset = max(self.offset, len(text))
        return piece

    @property
    def text(self) -> str:
        """All text added after the prefix."""
        return self.tokenizer.decode(self.ids)[self.start :]
