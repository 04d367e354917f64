"""How the next token is chosen from a model's logits: greedy, temperature, top-k and nucleus (top-p)
sampling, drawn from a private seeded generator when asked."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmtrain.config.checks import ConfigRangeError
from lmtrain.config.commands import check_temperature
from lmtrain.errors import UserError


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen from the logits.

    Args:
        greedy: take the most likely token (temperature 0 means the same).
        temperature: divide logits by this before sampling (< 1 sharper, > 1 flatter); 0 or in [0.01, 100].
        top_k: sample only among the k most likely tokens (0 = all).
        top_p: sample only from the smallest set of tokens whose probability reaches top_p (1 = all).
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        try:
            check_temperature(self.temperature)
        except ConfigRangeError as error:
            raise UserError(f"{error}.") from None
        if self.top_k < 0:
            raise UserError(f"top_k={self.top_k} must be >= 0 (0 = no top-k filtering).")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p={self.top_p} must be in (0, 1] (1 = no nucleus filtering).")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set every logit outside the top-k / nucleus (top-p) set to -inf.

    Args:
        logits: (B, V) next-token logits.
        top_k: keep the k largest logits per row (0 = keep all).
        top_p: keep the smallest set of most likely tokens whose probability mass reaches top_p.
    Returns:
        (B, V) filtered logits; the most likely token of every row always survives.
    """
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token once the tokens before it already hold top_p of the mass; the most likely
        # token stays even when top_p is 0 in float32 (top_p=1e-300)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop_sorted[:, 0] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_tokens(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose one token per row.

    Args:
        logits: (B, V) next-token logits.
        sampling: greedy or sampling settings.
        generator: random generator for sampling (reproducible draws).
    Returns:
        (B,) token ids.
    """
    if sampling.greedy or sampling.temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / sampling.temperature, sampling.top_k, sampling.top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A private random generator on ``device`` seeded with ``seed`` (None for no seed: global RNG)."""
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
