"""Torch datasets over an :class:`ExampleStore`, with optional dynamic masking."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from lmtrain.data.masking import MaskingSpec, example_rng, mask_tokens
from lmtrain.data.store import ExampleStore


class PretrainingDataset(Dataset):
    """Examples of a store; with ``masking`` each draw gets a fresh mask.

    The mask of example ``i`` in epoch ``e`` comes from a generator seeded by (seed, e, i), so it
    is new every epoch yet the same on every rerun, in any worker, and after a resume.

    Args:
        store: the tokenized examples.
        masking: dynamic masking spec, or None when examples are already masked (or need none).
        seed: seed of the dynamic masks.
    """

    def __init__(self, store: ExampleStore, masking: MaskingSpec | None = None, seed: int = 0):
        self.store = store
        self.masking = masking
        self.seed = seed
        self.epoch = 0
        self._pool = masking.random_candidates() if masking is not None else None

    def set_epoch(self, epoch: int) -> None:
        """Select the masks of ``epoch`` (call before iterating an epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, np.ndarray | int]:
        example = self.store[index]
        word_ids = example.pop("word_ids", None)
        if self.masking is not None:
            rng = example_rng(self.seed, self.epoch, index)
            example["input_ids"], example["labels"] = mask_tokens(
                example["input_ids"], self.masking, rng, word_ids=word_ids, candidates_pool=self._pool)
        return example
