"""The word vocabulary of an embedding run: counts, the min_count / max_vocab cut, word ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from lmtrain.errors import UserError


@dataclass
class Vocabulary:
    """Words sorted by descending count (ties alphabetically), as glove.c's vocab_count does.

    Attributes:
        words: the kept words; a word's id is its position.
        counts: (V,) occurrences of each kept word.
        total_tokens: tokens in the corpus, kept or not.
    """

    words: list[str]
    counts: np.ndarray
    total_tokens: int
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)


def check_vocabulary(total_tokens: int, kept: int, min_count: int, top_count: int, source: str) -> None:
    """Raise a UserError when the corpus has no words, or none survives ``min_count``.

    Args:
        total_tokens: tokens in the corpus after tokenisation.
        kept: words left after the min_count cut.
        min_count: the cut, for the message.
        top_count: occurrences of the most frequent word.
        source: the corpus files, for the message.
    """
    if total_tokens == 0:
        raise UserError(
            f"the corpus {source} has no words after tokenisation: the files are empty or "
            "embed.tokenize drops every token (simple_preprocess keeps only alphabetic words of "
            "2-15 letters). Check embed.train_files / embed.text_field, or try "
            "embed.tokenize=lower."
        )
    if kept == 0:
        raise UserError(
            f"no word occurs at least min_count={min_count} times in {source} (the most "
            f"frequent word occurs {top_count} times in {total_tokens} tokens); lower "
            f"embed.min_count to at most {top_count} or train on more text."
        )


def build_vocabulary(docs: Iterable[list[str]], min_count: int, max_vocab: int | None, source: str) -> Vocabulary:
    """Count words over one pass of ``docs`` and keep those seen ``min_count`` times or more.

    Args:
        docs: tokenised documents.
        min_count: minimum number of occurrences of a kept word.
        max_vocab: keep at most this many words (the most frequent); None = no cap.
        source: the corpus files, named in errors.

    Returns:
        The vocabulary; raises UserError when it would be empty.
    """
    counter: Counter[str] = Counter()
    for doc in docs:
        counter.update(doc)
    total_tokens = sum(counter.values())
    kept = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
    if max_vocab is not None:
        kept = kept[:max_vocab]
    check_vocabulary(total_tokens, len(kept), min_count, max(counter.values(), default=0), source)
    return Vocabulary(
        words=[w for w, _ in kept], counts=np.array([c for _, c in kept], dtype=np.int64), total_tokens=total_tokens
    )


def encode(docs: Iterable[list[str]], vocab: Vocabulary) -> Iterator[np.ndarray]:
    """Yield each document as an int32 array of word ids, out-of-vocabulary words removed.

    Dropping unknown words before windowing is what glove.c's cooccur does: they neither count
    nor take up a window position.
    """
    index = vocab.index
    for doc in docs:
        ids = np.fromiter((index.get(w, -1) for w in doc), dtype=np.int32, count=len(doc))
        yield ids[ids >= 0]
