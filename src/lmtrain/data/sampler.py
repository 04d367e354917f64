"""Batches of example indices per epoch, resumable at any batch and shardable across ranks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Length bucketing sorts windows of this many (global) batches: wide enough that batches hold
# similar lengths, narrow enough that each epoch still mixes the data (Hugging Face's
# `group_by_length` uses 50 as well).
BUCKET_WINDOW = 50


class EpochBatches:
    """The batches of one epoch depend only on (seed, epoch): resume can start mid-epoch exactly.

    Args:
        n_examples: dataset size.
        batch_size: examples per batch on this rank.
        seed: shuffling seed.
        shuffle: shuffle each epoch (training) or keep order (evaluation).
        drop_last: drop the final incomplete batch (training) or keep it (evaluation).
        rank, world_size: this process's shard under data parallelism.
        lengths: each example's length; when given (and shuffling), batches hold examples of
            similar length (less padding) and the batches are shuffled instead of the examples.
    """

    def __init__(
        self,
        n_examples: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        lengths: Sequence[int] | np.ndarray | None = None,
    ):
        if lengths is not None and len(lengths) != n_examples:
            raise ValueError(f"{len(lengths)} lengths for {n_examples} examples")
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.lengths = None if lengths is None else np.asarray(lengths)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return self.n_examples // global_batch
        return -(-self.n_examples // global_batch)

    def _bucketed(self, order: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``order`` regrouped: sorted by ``lengths`` inside windows of batches, whole batches shuffled."""
        global_batch = self.batch_size * self.world_size
        n_full = len(order) // global_batch
        # The examples left over (dropped, or a final partial batch) are drawn before sorting,
        # so they are random ones, not the longest.
        kept, rest = order[: n_full * global_batch], order[n_full * global_batch :]
        window = global_batch * BUCKET_WINDOW
        chunks = [kept[i : i + window] for i in range(0, len(kept), window)]
        kept = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks] or [kept])
        batches = kept.reshape(n_full, global_batch)  # (N, G)
        return np.concatenate([batches[rng.permutation(n_full)].reshape(-1), rest])

    def batches(self, epoch: int, start: int = 0) -> list[list[int]]:
        """Index batches of ``epoch`` for this rank, from batch number ``start`` on."""
        order = np.arange(self.n_examples)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.n_examples)
            if self.lengths is not None:
                order = self._bucketed(order, self.lengths, rng)
        global_batch = self.batch_size * self.world_size
        result = []
        for b in range(start, len(self)):
            chunk = order[b * global_batch : (b + 1) * global_batch]
            mine = chunk[self.rank :: self.world_size].tolist()
            if mine:
                result.append(mine)
        return result
