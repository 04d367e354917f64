"""Words -> sub-word tokens and back: label alignment, sentence windows, and word-level predictions.

A word's label goes on its first sub-word; the other sub-words get -100 (ignored by the loss and the
metric). Sentences longer than the model's limit are split at word boundaries into consecutive
windows, each framed by the tokenizer's own special tokens, so no word is silently dropped: each
word is labelled, and predicted, in exactly one window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.data.tokenizer import TextTokenizer, encode_ids_only
from lmtrain.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Window:
    """One model input cut from a sentence.

    Attributes:
        sentence: index of the sentence it came from.
        window: position of this window within the sentence.
        input_ids: token ids framed with the special tokens.
        word_index: (T,) index of the word whose first sub-word sits at each position, -1 elsewhere.
    """

    sentence: int
    window: int
    input_ids: np.ndarray
    word_index: np.ndarray


def encode_words(tokenizer: TextTokenizer, sentences: list[list[str]]) -> list[tuple[list[int], list[int | None]]]:
    """Sub-word ids and word ids of pre-split sentences.

    Every word but the first is given a leading space so byte-level BPE tokenizers see it the way
    they saw words inside running text (WordPiece ignores the space). A pre-split word is normalized, split
    and encoded on its own, so its pieces are the same wherever it occurs: each distinct word is encoded
    once (batched), an eighth of the words of CoNLL-2003. A tokenizer that samples its pieces (BPE dropout)
    encodes every sentence instead.
    """
    batch = [[word if i == 0 else " " + word for i, word in enumerate(words)] for words in sentences]
    if getattr(tokenizer.tokenizer.model, "dropout", None):
        encodings = tokenizer.tokenizer.encode_batch(batch, is_pretokenized=True, add_special_tokens=False)
        return [(e.ids, e.word_ids) for e in encodings]
    distinct = list(dict.fromkeys(word for words in batch for word in words))
    encoded = encode_ids_only(tokenizer.tokenizer, [[word] for word in distinct], is_pretokenized=True)
    pieces = {word: e.ids for word, e in zip(distinct, encoded)}
    out: list[tuple[list[int], list[int | None]]] = []
    for words in batch:
        ids: list[int] = []
        word_ids: list[int | None] = []
        for index, word in enumerate(words):
            ids += pieces[word]
            word_ids += [index] * len(pieces[word])
        out.append((ids, word_ids))
    return out


def frame_ids(tokenizer: TextTokenizer) -> tuple[list[int], list[int]]:
    """The special ids before and after one text: [CLS] .. [SEP], <s> .. </s>, or nothing (GPT-2)."""
    before = [tokenizer.ids["cls"]] if "cls" in tokenizer.ids else []
    after = [tokenizer.ids["sep"]] if "sep" in tokenizer.ids else []
    return before, after


def window_bounds(word_ids: list[int | None], max_tokens: int) -> list[tuple[int, int]]:
    """Token ranges of at most ``max_tokens`` that cover a sentence, cut between words where possible.

    A single word longer than a whole window is cut inside (its first sub-word keeps the label).
    """
    if max_tokens < 1:
        raise UserError("data.max_seq_len leaves no room for tokens besides the special ones; raise it.")
    n = len(word_ids)
    starts_word = [i == 0 or word_ids[i] != word_ids[i - 1] for i in range(n)]
    bounds, start = [], 0
    while start < n:
        end = min(n, start + max_tokens)
        if end < n:
            cut = next((i for i in range(end, start, -1) if starts_word[i]), end)
            end = cut
        bounds.append((start, end))
        start = end
    return bounds


def first_subwords(word_ids: list[int | None]) -> list[int]:
    """The word index at the first sub-word of every word, -1 at other sub-words and special tokens."""
    out, previous = [], None
    for word in word_ids:
        out.append(word if word is not None and word != previous else -1)
        previous = word
    return out


def make_windows(tokenizer: TextTokenizer, sentences: list[list[str]], max_seq_len: int) -> list[Window]:
    """Encode pre-split ``sentences`` into framed windows of at most ``max_seq_len`` tokens."""
    before, after = frame_ids(tokenizer)
    budget = max_seq_len - len(before) - len(after)
    no_word_before, no_word_after = [-1] * len(before), [-1] * len(after)
    windows, split, empty = [], 0, 0
    for s, (ids, word_ids) in enumerate(encode_words(tokenizer, sentences)):
        index = first_subwords(word_ids)
        empty += len(sentences[s]) - (len(index) - index.count(-1))
        # a sentence that fits is one window: no search for cuts
        bounds = [(0, len(ids))] if not ids or len(ids) <= budget else window_bounds(word_ids, budget)
        split += len(bounds) > 1
        for w, (start, end) in enumerate(bounds):
            input_ids = np.array(before + ids[start:end] + after, dtype=np.int64)
            word_index = np.array(no_word_before + index[start:end] + no_word_after, dtype=np.int64)
            windows.append(Window(s, w, input_ids, word_index))
    if split:
        log.info("%d sentence(s) longer than data.max_seq_len=%d tokens were split into windows", split, max_seq_len)
    if empty:
        log.warning("%d word(s) produced no sub-word token (e.g. control characters) and are tagged O", empty)
    return windows


def window_labels(window: Window, tag_ids: list[int]) -> np.ndarray:
    """(T,) label ids of a window: the word's tag id on its first sub-word, -100 elsewhere."""
    return np.array(
        [tag_ids[word] if word >= 0 else IGNORE_INDEX for word in window.word_index.tolist()], dtype=np.int64
    )


def words_from_windows(
    windows: list[Window], predicted: list[np.ndarray], n_words: list[int], default: int
) -> list[list[int]]:
    """Word-level predictions per sentence from per-window token predictions.

    Args:
        windows: the windows of every sentence.
        predicted: (T,) predicted ids of each window.
        n_words: words of each sentence.
        default: id given to words that produced no sub-word (the ``O`` tag).
    """
    out = [[default] * n for n in n_words]
    for window, ids in zip(windows, predicted):
        has_word = window.word_index >= 0
        for word, label in zip(window.word_index[has_word], np.asarray(ids)[has_word]):
            out[window.sentence][int(word)] = int(label)
    return out
