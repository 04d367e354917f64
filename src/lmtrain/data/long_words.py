"""Words longer than a tokenizer is trained on: cut into pieces, in training and in every later encoding.

Training BPE or WordPiece takes time quadratic in the length of a pre-token (a word, or a run of
letters, digits or symbols, as the tokenizer's pre-tokenizer splits text): one line of a million
characters without white space kept `tokenizers` busy for half an hour. A tokenizer trained here
cuts every pre-token into pieces of at most :data:`MAX_PRETOKEN_CHARS` characters (bytes for
byte-level BPE). The cut is the last step of the tokenizer's own pre-tokenizer, saved in its
``tokenizer.json``, so text is cut the same way when the tokenizer is trained and whenever it
tokenizes text afterwards (preparation, generate, predict, an exported model). WordPiece already
read a word of more than 100 characters as one unknown token; it now reads its pieces.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, pre_tokenizers

log = logging.getLogger(__name__)

MAX_PRETOKEN_CHARS = 100
# Text that may hold a pre-token over the limit: a run of 26+ characters (4 UTF-8 bytes each at most)
# without white space, with the white space before it (byte-level BPE keeps one), or of white space.
_QUARTER = MAX_PRETOKEN_CHARS // 4 + 1
_CANDIDATE = re.compile(rf"\s?\S{{{_QUARTER},}}|\s{{{_QUARTER},}}")


def bound_pre_tokens(tokenizer: Tokenizer) -> None:
    """Make ``tokenizer``'s pre-tokenizer cut each pre-token into pieces of at most MAX_PRETOKEN_CHARS."""
    cut = pre_tokenizers.Split(Regex(f".{{1,{MAX_PRETOKEN_CHARS}}}"), behavior="isolated")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([tokenizer.pre_tokenizer, cut])


class LongWordCount:
    """Counts the pre-tokens over MAX_PRETOKEN_CHARS in texts a tokenizer is trained on, and logs them.

    Args:
        tokenizer: the tokenizer before :func:`bound_pre_tokens` (its normalizer and pre-tokenizer
            say what a pre-token is).
        unit: what a pre-token's length counts: ``characters``, or ``bytes`` for byte-level BPE.
    """

    def __init__(self, tokenizer: Tokenizer, unit: str):
        self.normalizer, self.pre_tokenizer, self.unit = tokenizer.normalizer, tokenizer.pre_tokenizer, unit
        self.count, self.longest = 0, 0

    def counted(self, texts: Iterable[str]) -> Iterator[str]:
        """``texts`` unchanged, counting their long pre-tokens on the way."""
        for text in texts:
            for match in _CANDIDATE.finditer(text):
                self._count(match.group())
            yield text

    def _count(self, candidate: str) -> None:
        if self.normalizer is not None:
            candidate = self.normalizer.normalize_str(candidate)
        for piece, _ in self.pre_tokenizer.pre_tokenize_str(candidate):
            if len(piece) > MAX_PRETOKEN_CHARS:
                self.count += 1
                self.longest = max(self.longest, len(piece))

    def report(self) -> None:
        """Log how many pre-tokens were cut (nothing when none was)."""
        if not self.count:
            return
        words, were = ("word", "was") if self.count == 1 else ("words", "were")
        log.warning(
            "%d %s of more than %d %s (the longest %d) %s cut into pieces of %d %s for the tokenizer, so "
            "that training it stays fast; it cuts them the same way whenever it tokenizes text",
            self.count,
            words,
            MAX_PRETOKEN_CHARS,
            self.unit,
            self.longest,
            were,
            MAX_PRETOKEN_CHARS,
            self.unit,
        )
