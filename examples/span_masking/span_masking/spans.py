"""Span masking (Joshi et al. 2020, SpanBERT): mask contiguous runs of whole words instead of single tokens.

Span lengths (in words) follow a geometric distribution Geo(p) clipped at ``max_span`` (p = 0.2,
max 10: mean 3.8 words); spans are drawn until ``mask_prob`` of the tokens are selected. Each
span is replaced as a whole: 80% by [MASK] tokens, 10% by random tokens, 10% kept.
"""

from __future__ import annotations

import numpy as np

from lmtrain.data.masking import IGNORE_INDEX, MaskingSpec

MAX_ATTEMPTS_PER_SPAN = 20  # a drawn span that overlaps a chosen one is redrawn at most this often


def span_length_probs(p: float, max_span: int) -> np.ndarray:
    """P(length = 1..max_span): the geometric distribution Geo(p) clipped at ``max_span`` and renormalised."""
    lengths = np.arange(1, max_span + 1)
    probs = p * (1 - p) ** (lengths - 1)
    return probs / probs.sum()


def word_groups(candidates: np.ndarray, word_ids: np.ndarray | None) -> list[np.ndarray]:
    """Candidate positions grouped into words (consecutive positions with one word id); each token alone
    without word ids."""
    positions = np.flatnonzero(candidates)
    if word_ids is None or len(positions) == 0:
        return [positions[i : i + 1] for i in range(len(positions))]
    words = word_ids[positions]
    breaks = np.flatnonzero((np.diff(words) != 0) | (np.diff(positions) != 1)) + 1
    return np.split(positions, breaks)


class SpanMasking:
    """The corruption lmtrain's dataset calls on every draw: ``(input_ids, rng, word_ids) -> (ids, labels)``.

    Args:
        spec: [MASK] id, vocabulary, special ids, ``mask_prob`` and the 80/10/10 split (lmtrain's MaskingSpec).
        p: parameter of the geometric span-length distribution.
        max_span: longest span, in words.
    """

    def __init__(self, spec: MaskingSpec, p: float = 0.2, max_span: int = 10):
        self.spec = spec
        self.lengths = np.arange(1, max_span + 1)
        self.probs = span_length_probs(p, max_span)
        self.pool = spec.random_candidates()

    def select(self, input_ids: np.ndarray, rng: np.random.Generator, word_ids: np.ndarray | None) -> list[np.ndarray]:
        """The chosen spans, each an array of token positions (whole words, never special tokens)."""
        candidates = ~np.isin(input_ids, np.asarray(self.spec.special_ids))
        words = word_groups(candidates, word_ids)
        if not words:
            return []
        budget = max(1, int(round(self.spec.mask_prob * int(candidates.sum()))))
        taken = np.zeros(len(words), dtype=bool)
        spans, count, attempts = [], 0, 0
        while count < budget and attempts < MAX_ATTEMPTS_PER_SPAN * budget:
            attempts += 1
            length = int(rng.choice(self.lengths, p=self.probs))
            start = int(rng.integers(len(words)))
            stop = min(start + length, len(words))
            if taken[start:stop].any():
                continue
            taken[start:stop] = True
            span = np.concatenate(words[start:stop])
            spans.append(span)
            count += len(span)
        return spans

    def __call__(
        self, input_ids: np.ndarray, rng: np.random.Generator, word_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array(input_ids, copy=True)
        labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
        for span in self.select(ids, rng, word_ids):
            labels[span] = ids[span]
            roll = rng.random()
            if roll < self.spec.mask_token_prob:
                ids[span] = self.spec.mask_id
            elif roll < self.spec.mask_token_prob + self.spec.random_token_prob:
                ids[span] = rng.choice(self.pool, size=len(span))
        return ids, labels
