"""BERT's sentence-pair examples for masked LM + next-sentence prediction.

Follows the original `create_pretraining_data.py`: sentences of a document are gathered into
chunks up to a target length (shorter with probability `short_seq_prob`), a chunk is cut into A
and B; half the time B is replaced by a span from a different document (label 1, "random"),
and the longer side is truncated until `[CLS] A [SEP] B [SEP]` fits. Unlike the original, a
chunk of one sentence is not forced to a random B (which pushes the random share well past
50% on short documents): it takes the next sentence, or is split in two, so labels stay 50/50.

A tokenized sentence is a (2, L) int array: token ids in row 0, word ids in row 1 (unique
across the corpus, so whole-word masking can find word boundaries after packing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

IS_NEXT, IS_RANDOM = 0, 1


@dataclass
class SentencePair:
    """One NSP example before masking."""

    input_ids: np.ndarray  # (T,) [CLS] A [SEP] B [SEP]
    token_type_ids: np.ndarray  # (T,) 0 for [CLS] A [SEP], 1 for B [SEP]
    word_ids: np.ndarray  # (T,) word id of each token, -1 for special tokens
    next_sentence_label: int  # IS_NEXT or IS_RANDOM


def _join(sentences: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(sentences, axis=1) if sentences else np.zeros((2, 0), dtype=np.int64)


def _truncate_pair(a: np.ndarray, b: np.ndarray, max_tokens: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Cut tokens from the longer side (front or back at random) until both fit (both empty at worst)."""
    while a.shape[1] + b.shape[1] > max(max_tokens, 0):
        cut_front = rng.random() < 0.5
        if a.shape[1] > b.shape[1]:
            a = a[:, 1:] if cut_front else a[:, :-1]
        else:
            b = b[:, 1:] if cut_front else b[:, :-1]
    return a, b


def _random_span(docs: list[list[np.ndarray]], exclude: int, length: int, rng: random.Random) -> np.ndarray:
    """Up to ``length`` tokens of consecutive sentences from a document other than ``exclude``."""
    other = exclude
    for _ in range(10):
        other = rng.randrange(len(docs))
        if other != exclude:
            break
    doc = docs[other]
    taken, count = [], 0
    for sentence in doc[rng.randrange(len(doc)) :]:
        taken.append(sentence)
        count += sentence.shape[1]
        if count >= length:
            break
    return _join(taken)


def pairs_from_document(
    docs: list[list[np.ndarray]],
    index: int,
    max_seq_len: int,
    short_seq_prob: float,
    cls_id: int,
    sep_id: int,
    rng: random.Random,
) -> list[SentencePair]:
    """All sentence pairs of document ``index``; ``docs`` hold (2, L) tokenized sentences."""
    max_tokens = max_seq_len - 3  # room for [CLS] and two [SEP]
    target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
    document, pairs = docs[index], []
    chunk: list[np.ndarray] = []
    length, i = 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += document[i].shape[1]
        if i == len(document) - 1 or length >= target:
            want_random = len(docs) > 1 and rng.random() < 0.5
            if not want_random and len(chunk) == 1 and i + 1 < len(document):
                # One long sentence filled the chunk: take the next one as B rather than forcing a
                # random B (the original code does that, which skews the labels past 50%).
                i += 1
                chunk.append(document[i])
            if not want_random and len(chunk) == 1 and chunk[0].shape[1] >= 2:
                # The last sentence of a document alone: its two halves are still consecutive
                # text, so split it rather than force a random B.
                cut = rng.randint(1, chunk[0].shape[1] - 1)
                chunk = [chunk[0][:, :cut], chunk[0][:, cut:]]
            a_end = 1 if len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
            a = _join(chunk[:a_end])
            if len(docs) > 1 and (want_random or len(chunk) == 1):
                label = IS_RANDOM
                b = _random_span(docs, index, max(1, target - a.shape[1]), rng)
                i -= len(chunk) - a_end  # the unused sentences start the next chunk
            else:
                label = IS_NEXT
                b = _join(chunk[a_end:])
            a, b = _truncate_pair(a, b, max_tokens, rng)
            if a.shape[1] and b.shape[1]:
                ids = np.concatenate([[cls_id], a[0], [sep_id], b[0], [sep_id]]).astype(np.int32)
                words = np.concatenate([[-1], a[1], [-1], b[1], [-1]]).astype(np.int32)
                types = np.asarray([0] * (a.shape[1] + 2) + [1] * (b.shape[1] + 1), dtype=np.int8)
                pairs.append(SentencePair(ids, types, words, label))
            chunk, length = [], 0
            target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
        i += 1
    return pairs


def build_pairs(
    docs: list[list[np.ndarray]], max_seq_len: int, short_seq_prob: float, cls_id: int, sep_id: int, seed: int
) -> list[SentencePair]:
    """Sentence pairs of every document (documents with no tokens are skipped).

    Raises:
        ValueError: ``max_seq_len`` below 5, too short for [CLS] A [SEP] B [SEP] with a token in A and B.
    """
    if max_seq_len < 5:
        raise ValueError(
            f"max_seq_len={max_seq_len}: sentence pairs need at least 5 tokens "
            "([CLS] A [SEP] B [SEP] with one token in A and one in B)"
        )
    docs = [[s for s in d if s.shape[1]] for d in docs]
    docs = [d for d in docs if d]
    rng = random.Random(seed)
    pairs: list[SentencePair] = []
    for index in range(len(docs)):
        pairs.extend(pairs_from_document(docs, index, max_seq_len, short_seq_prob, cls_id, sep_id, rng))
    return pairs
