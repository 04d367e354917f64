"""Masking statistics: 15% selected; of those 80% [MASK], 10% random, 10% kept; specials never."""

import numpy as np

from lmtrain.data.masking import IGNORE_INDEX, MaskingSpec, example_rng, mask_tokens

SPECIALS = (0, 1, 2, 3, 4)  # pad, unk, cls, sep, mask
SPEC = MaskingSpec(mask_id=4, vocab_size=1000, special_ids=SPECIALS)


def _sequence(rng, length=128):
    ids = rng.integers(5, 1000, size=length)
    ids[0], ids[length // 2], ids[-1] = 2, 3, 3  # [CLS] ... [SEP] ... [SEP]
    return ids


def test_masking_rates_within_tolerance():
    rng = np.random.default_rng(0)
    selected = masked = random = kept = candidates = 0
    for _ in range(400):
        ids = _sequence(rng)
        corrupted, labels = mask_tokens(ids, SPEC, rng)
        sel = labels != IGNORE_INDEX
        candidates += int((~np.isin(ids, SPECIALS)).sum())
        selected += int(sel.sum())
        masked += int((corrupted[sel] == 4).sum())
        kept += int((corrupted[sel] == ids[sel]).sum())
        random += int(((corrupted[sel] != 4) & (corrupted[sel] != ids[sel])).sum())
    assert abs(selected / candidates - 0.15) < 0.005
    assert abs(masked / selected - 0.8) < 0.02
    # a random replacement equals the original with probability 1/995: counted as kept
    assert abs(random / selected - 0.1) < 0.015
    assert abs(kept / selected - 0.1) < 0.015


def test_special_tokens_never_selected_and_labels_ignored_elsewhere():
    rng = np.random.default_rng(1)
    for _ in range(200):
        ids = _sequence(rng, 40)
        corrupted, labels = mask_tokens(ids, SPEC, rng)
        special = np.isin(ids, SPECIALS)
        assert (labels[special] == IGNORE_INDEX).all()
        assert (corrupted[special] == ids[special]).all()
        sel = labels != IGNORE_INDEX
        assert (labels[sel] == ids[sel]).all()
        assert not np.isin(corrupted[sel & (corrupted != 4)], SPECIALS).any()  # random tokens never special


def test_dynamic_mask_reproducible_and_changes_with_epoch():
    ids = _sequence(np.random.default_rng(2))
    first = mask_tokens(ids, SPEC, example_rng(7, epoch=0, index=3))[1]
    again = mask_tokens(ids, SPEC, example_rng(7, epoch=0, index=3))[1]
    next_epoch = mask_tokens(ids, SPEC, example_rng(7, epoch=1, index=3))[1]
    assert (first == again).all()
    assert (first != next_epoch).any()


def test_whole_word_masking_selects_complete_words():
    rng = np.random.default_rng(3)
    spec = MaskingSpec(mask_id=4, vocab_size=1000, special_ids=SPECIALS, whole_word=True)
    ids = rng.integers(5, 1000, size=60)
    words = np.repeat(np.arange(20), 3)  # every word has three sub-words
    for _ in range(50):
        _, labels = mask_tokens(ids, spec, rng, word_ids=words)
        selected_words = set(words[labels != IGNORE_INDEX])
        for w in selected_words:
            assert (labels[words == w] != IGNORE_INDEX).all()
