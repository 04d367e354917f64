"""Torch datasets over an :class:`ExampleStore`, with optional dynamic corruption (masking)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from lmtrain.data.masking import example_rng
from lmtrain.data.store import ExampleStore

# (input_ids, rng, word_ids) -> (corrupted input_ids, labels): e.g. lmtrain.data.masking.TokenMasking
Corruption = Callable[[np.ndarray, np.random.Generator, "np.ndarray | None"], tuple[np.ndarray, np.ndarray]]


class PretrainingDataset(Dataset):
    """Examples of a store; with ``corruption`` each draw gets a fresh mask.

    The mask of example ``i`` in epoch ``e`` comes from a generator seeded by (seed, e, i), so it
    is new every epoch yet the same on every rerun, in any worker, and after a resume.

    Args:
        store: the tokenized examples.
        corruption: called on every draw (dynamic masking), or None when examples are already masked
            (or need none).
        seed: seed of the dynamic masks.
    """

    def __init__(self, store: ExampleStore, corruption: Corruption | None = None, seed: int = 0):
        self.store = store
        self.corruption = corruption
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the masks of ``epoch`` (call before iterating an epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.store)

    def sequence_values(self, field: str, indices: Sequence[int]) -> np.ndarray | None:
        """The stored ``field`` tokens of examples ``indices``, one after another (see
        :meth:`ExampleStore.sequence_values`); None when draws corrupt the examples, so only reading each
        example gives what training sees."""
        return None if self.corruption is not None else self.store.sequence_values(field, indices)

    def __getitem__(self, index: int) -> dict[str, np.ndarray | int]:
        example = self.store[index]
        word_ids = example.pop("word_ids", None)
        if self.corruption is not None:
            input_ids = example["input_ids"]
            # sequence fields read as arrays, scalar fields as ints (ExampleStore); these two are sequences
            assert isinstance(input_ids, np.ndarray) and not isinstance(word_ids, int)
            rng = example_rng(self.seed, self.epoch, index)
            example["input_ids"], example["labels"] = self.corruption(input_ids, rng, word_ids)
        return example
