"""Epoch batches: shuffled by (seed, epoch), resumable mid-epoch, sharded, length-bucketed."""

from __future__ import annotations

import numpy as np
import pytest

from lmtrain.data.sampler import BUCKET_WINDOW, EpochBatches

LENGTHS = np.random.default_rng(0).integers(3, 120, size=1000)


def _padded_tokens(batches: list[list[int]]) -> int:
    return sum(len(b) * int(LENGTHS[b].max()) for b in batches)


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_an_epoch_depends_only_on_seed_and_epoch_and_resumes_at_any_batch(lengths):
    sampler = EpochBatches(len(LENGTHS), 16, seed=3, lengths=lengths)
    epoch = sampler.batches(2)
    assert len(epoch) == len(sampler) == 1000 // 16
    assert EpochBatches(len(LENGTHS), 16, seed=3, lengths=lengths).batches(2) == epoch
    assert sampler.batches(2, start=17) == epoch[17:]
    assert sampler.batches(3) != epoch and EpochBatches(len(LENGTHS), 16, seed=4, lengths=lengths).batches(2) != epoch
    used = [i for b in epoch for i in b]
    assert len(used) == len(set(used)) == 62 * 16  # no example twice; 8 left out by drop_last


def test_bucketed_batches_hold_similar_lengths_in_shuffled_order():
    plain = EpochBatches(len(LENGTHS), 16, seed=3).batches(0)
    bucketed = EpochBatches(len(LENGTHS), 16, seed=3, lengths=LENGTHS).batches(0)
    assert _padded_tokens(bucketed) < 0.6 * _padded_tokens(plain)
    longest = [int(LENGTHS[b].max()) for b in bucketed]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)  # batches are shuffled
    # the examples left out are random ones, not the longest
    left_out = np.setdiff1d(np.arange(len(LENGTHS)), [i for b in bucketed for i in b])
    assert LENGTHS[left_out].min() < np.median(LENGTHS)


def test_bucketing_keeps_mixing_the_data_between_epochs():
    sampler = EpochBatches(len(LENGTHS), 4, seed=1, lengths=LENGTHS)
    assert len(LENGTHS) > 4 * BUCKET_WINDOW  # several sorting windows per epoch
    pairs = [{frozenset(b) for b in sampler.batches(e)} for e in range(2)]
    assert len(pairs[0] & pairs[1]) < len(pairs[0]) // 4


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_ranks_split_each_global_batch(lengths):
    ranks = [EpochBatches(len(LENGTHS), 8, seed=5, rank=r, world_size=2, lengths=lengths).batches(1) for r in (0, 1)]
    single = EpochBatches(len(LENGTHS), 16, seed=5, lengths=lengths).batches(1)
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for a, b, whole in zip(*ranks, single):
        assert sorted(a + b) == sorted(whole) and len(a) == len(b) == 8


def test_evaluation_order_is_unchanged_and_keeps_the_last_partial_batch():
    batches = EpochBatches(10, 4, shuffle=False, drop_last=False, lengths=LENGTHS[:10]).batches(0)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
