"""The majority-token baseline: read from the store's label column in one pass when the labels are stored (static
masks), example by example when they are drawn on each read (dynamic masks); the same number either way."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from torch.utils.data import Subset

from lmtrain.data.baselines import majority_token_accuracy
from lmtrain.data.datasets import PretrainingDataset
from lmtrain.data.masking import IGNORE_INDEX, MaskingSpec, TokenMasking
from lmtrain.data.store import ExampleStore, index_shards, write_store


def _store(tmp_path, name: str, sizes: tuple[int, ...], seed: int) -> ExampleStore:
    """A sharded store of ``sizes`` examples per shard; labels mostly ignored, a few of 6 token ids."""
    rng = np.random.default_rng(seed)
    for shard, n in enumerate(sizes):
        ids = [rng.integers(10, 60, size=rng.integers(3, 20)).astype(np.int32) for _ in range(n)]
        labels = [np.where(rng.random(len(x)) < 0.3, rng.integers(0, 6, size=len(x)), IGNORE_INDEX) for x in ids]
        write_store(tmp_path / name / f"s{shard}", {"input_ids": ids, "labels": labels}, {"nsp": [0] * n}, {})
    index_shards(tmp_path / name, [f"s{shard}" for shard in range(len(sizes))], {})
    return ExampleStore(tmp_path / name)


def _by_example(train, held_out) -> float:
    """The baseline as defined: every example's labels in order, the first most frequent one of training."""
    train_labels = np.concatenate([np.asarray(train[i]["labels"]) for i in range(len(train))])
    eval_labels = np.concatenate([np.asarray(held_out[i]["labels"]) for i in range(len(held_out))])
    train_labels, eval_labels = train_labels[train_labels != IGNORE_INDEX], eval_labels[eval_labels != IGNORE_INDEX]
    majority = Counter(train_labels.tolist()).most_common(1)[0][0]
    return float((eval_labels == majority).mean())


def test_stored_labels_are_read_by_column_and_give_the_per_example_value(tmp_path, monkeypatch):
    train_set = PretrainingDataset(_store(tmp_path, "train", (40, 7, 25), seed=1))
    eval_set = PretrainingDataset(_store(tmp_path, "eval", (30,), seed=2))
    train, held_out = Subset(train_set, [0, 5, 39, 40, 46, 47, 71, 3, 60]), Subset(eval_set, list(range(30)))
    expected = {"subsets": _by_example(train, held_out), "whole sets": _by_example(train_set, eval_set)}

    def no_reads(self, index):
        raise AssertionError("read example by example")

    monkeypatch.setattr(PretrainingDataset, "__getitem__", no_reads)
    assert majority_token_accuracy(train, held_out) == expected["subsets"]
    assert majority_token_accuracy(train_set, eval_set) == expected["whole sets"]


def test_a_tie_goes_to_the_label_seen_first_as_before(tmp_path):
    sequences = {"input_ids": [np.arange(4, dtype=np.int32)] * 2, "labels": [np.asarray([7, 5, 5, 7], np.int32)] * 2}
    write_store(tmp_path / "tie", sequences, {}, {})
    store = PretrainingDataset(ExampleStore(tmp_path / "tie"))
    assert majority_token_accuracy(store, store) == pytest.approx(0.5)
    only_sevens = [{"labels": np.asarray([7, IGNORE_INDEX])}]
    assert majority_token_accuracy(store, only_sevens) == 1.0  # 7 and 5 tie four to four: 7 came first
    assert majority_token_accuracy([{"labels": np.asarray([5, 7, 7, 5])}], only_sevens) == 0.0


def test_labels_drawn_on_each_read_are_read_example_by_example(tmp_path):
    store = _store(tmp_path, "dynamic", (20, 12), seed=3)
    masking = TokenMasking(MaskingSpec(mask_id=1, vocab_size=60, special_ids=(0, 1, 2)))
    train, held_out = PretrainingDataset(store, masking, seed=4), PretrainingDataset(store, masking, seed=5)
    assert majority_token_accuracy(train, held_out) == _by_example(train, held_out)
