"""Batches of example indices per epoch, resumable at any batch and shardable across ranks."""

from __future__ import annotations

import numpy as np


class EpochBatches:
    """The batches of one epoch depend only on (seed, epoch): resume can start mid-epoch exactly.

    Args:
        n_examples: dataset size.
        batch_size: examples per batch on this rank.
        seed: shuffling seed.
        shuffle: shuffle each epoch (training) or keep order (evaluation).
        drop_last: drop the final incomplete batch (training) or keep it (evaluation).
        rank, world_size: this process's shard under data parallelism.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return self.n_examples // global_batch
        return -(-self.n_examples // global_batch)

    def batches(self, epoch: int, start: int = 0) -> list[list[int]]:
        """Index batches of ``epoch`` for this rank, from batch number ``start`` on."""
        order = np.arange(self.n_examples)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)
        global_batch = self.batch_size * self.world_size
        result = []
        for b in range(start, len(self)):
            chunk = order[b * global_batch:(b + 1) * global_batch]
            mine = chunk[self.rank::self.world_size].tolist()
            if mine:
                result.append(mine)
        return result
