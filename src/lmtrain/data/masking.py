"""BERT's masked-LM corruption: select 15% of tokens; of those 80% [MASK], 10% random, 10% kept.

Used once at preprocessing (static masking, BERT) or every time a sequence is drawn (dynamic
masking, RoBERTa). Special tokens and padding are never selected; labels are -100 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskingSpec:
    """What to corrupt and how.

    Args:
        mask_id: id of the [MASK] token.
        vocab_size: random replacements are drawn from ``range(vocab_size)`` minus special ids.
        special_ids: ids never selected and never used as random replacements.
        mask_prob: share of candidate tokens selected for prediction.
        mask_token_prob: share of the selected replaced by [MASK].
        random_token_prob: share of the selected replaced by a random token.
        whole_word: select whole words (all sub-words of a word together) using word ids.
    """

    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    mask_prob: float = 0.15
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1
    whole_word: bool = False

    def random_candidates(self) -> np.ndarray:
        """Ids a selected token may be replaced by (every non-special id)."""
        ids = np.arange(self.vocab_size)
        return ids[~np.isin(ids, np.asarray(self.special_ids))]


def _select(
    candidates: np.ndarray, word_ids: np.ndarray | None, n_target: int, rng: np.random.Generator, whole_word: bool
) -> np.ndarray:
    """Boolean mask selecting about ``n_target`` candidate positions (whole words if asked)."""
    selected = np.zeros(len(candidates), dtype=bool)
    positions = np.flatnonzero(candidates)
    if not whole_word or word_ids is None:
        selected[rng.choice(positions, size=n_target, replace=False)] = True
        return selected
    # Group candidate positions by word; pick whole words in random order until the budget is met.
    words = word_ids[positions]
    boundaries = np.flatnonzero(np.diff(words)) + 1
    groups = np.split(positions, boundaries)
    count = 0
    for g in rng.permutation(len(groups)):
        if count >= n_target:
            break
        if count + len(groups[g]) > n_target and count > 0:
            continue  # this word would overshoot the budget: try a shorter one
        selected[groups[g]] = True
        count += len(groups[g])
    return selected


def mask_tokens(
    input_ids: np.ndarray,
    spec: MaskingSpec,
    rng: np.random.Generator,
    word_ids: np.ndarray | None = None,
    candidates_pool: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt one sequence for masked LM.

    Args:
        input_ids: (T,) token ids, special tokens included, no padding.
        spec: what to corrupt and how.
        rng: the random generator (seeded by the caller for reproducibility).
        word_ids: (T,) word index of each token (-1 for special tokens) for whole-word masking.
        candidates_pool: precomputed ``spec.random_candidates()`` (saves work in loops).
    Returns:
        (corrupted ids, labels): labels hold the original id at selected positions, -100 elsewhere.
    """
    input_ids = np.asarray(input_ids)
    candidates = ~np.isin(input_ids, np.asarray(spec.special_ids))
    n_candidates = int(candidates.sum())
    labels = np.full_like(input_ids, IGNORE_INDEX)
    if n_candidates == 0:
        return input_ids.copy(), labels
    n_target = min(n_candidates, max(1, int(round(n_candidates * spec.mask_prob))))
    selected = _select(candidates, word_ids, n_target, rng, spec.whole_word)
    labels[selected] = input_ids[selected]
    corrupted = input_ids.copy()
    roll = rng.random(len(input_ids))
    to_mask = selected & (roll < spec.mask_token_prob)
    to_random = selected & (roll >= spec.mask_token_prob) & (roll < spec.mask_token_prob + spec.random_token_prob)
    corrupted[to_mask] = spec.mask_id
    pool = spec.random_candidates() if candidates_pool is None else candidates_pool
    corrupted[to_random] = rng.choice(pool, size=int(to_random.sum()))
    return corrupted, labels


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sequence's dynamic mask: the same (seed, epoch, index), the same mask."""
    return np.random.default_rng([seed, epoch, index])


class TokenMasking:
    """BERT's corruption as a callable: ``(input_ids, rng, word_ids) -> (corrupted ids, labels)``.

    :class:`lmtrain.data.datasets.PretrainingDataset` calls any such callable on every draw
    (dynamic masking); an objective of your own may pass its own (e.g. span masking).
    """

    def __init__(self, spec: MaskingSpec):
        self.spec = spec
        self._pool = spec.random_candidates()

    def __call__(
        self, input_ids: np.ndarray, rng: np.random.Generator, word_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return mask_tokens(input_ids, self.spec, rng, word_ids=word_ids, candidates_pool=self._pool)
