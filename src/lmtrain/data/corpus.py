"""Corpora: bundled text, the user's text / JSONL / Parquet files or `datasets` splits, split into documents.

A document is a list of sentences (strings). Text files hold one document per line, or
documents separated by blank lines (`data.documents=blank_line`); JSONL files hold one document
per object, Parquet files and `datasets` splits one per row, in `data.text_field`. Local files are
read straight from disk (:mod:`lmtrain.data.file_texts`), `datasets` splits from their Arrow tables.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lmtrain.data.file_texts import BATCH, FileTexts
from lmtrain.data.files import data_suffix, is_parquet
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

# A sentence ends at . ! ? (optionally followed by closing quotes or brackets) before white space
# and an upper-case letter, digit or opening quote. Good enough for news and Wikipedia prose,
# and it never drops text: every character lands in exactly one sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def bundled_file(name: str) -> Path:
    """Path of a corpus file that ships with gensim (``gensim/test/test_data/<name>``)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise UserError("the bundled corpora ship with gensim, which is not installed; `pip install gensim`.")
    # Located without importing gensim.test.utils, which builds demo models at import time.
    path = Path(spec.origin).parent / "test" / "test_data" / name
    if not path.exists():
        raise UserError(
            f"data.bundled names '{name}', which is not in gensim's test_data folder "
            f"({path.parent}); use a file there such as lee_background.cor, or set "
            "data=text data.train_files=[...] for your own corpus."
        )
    return path


_WIKI_MARKUP = re.compile(r"'{2,}")
_WIKI_SKIP = ("=", "*", "#", "|", "{", "}", "!", ":", ";")


def is_wiki_dump(path: Path) -> bool:
    """Whether ``path`` looks like a compressed MediaWiki XML dump (``*.xml*.bz2``)."""
    return path.suffix == ".bz2" and ".xml" in path.name


def wiki_documents(path: Path) -> list[str]:
    """Article texts of a MediaWiki XML dump (`.xml.bz2`), markup stripped, one paragraph a line.

    Uses gensim's dump reader and markup filter; headings, lists, tables and very short lines
    (captions, leftovers of templates) are dropped, redirects skipped.
    """
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    docs = []
    with bz2.open(path) as dump:
        for _title, text, _page_id in extract_pages(dump, filter_namespaces=("0",)):
            text = filter_wiki(text)
            if text.lstrip().lower().startswith("#redirect"):
                continue
            paragraphs = [_WIKI_MARKUP.sub("", line).strip() for line in text.splitlines()]
            kept = [p for p in paragraphs if len(p) >= 40 and not p.startswith(_WIKI_SKIP)]
            if kept:
                docs.append("\n".join(kept))
    return docs


# Longest document kept whole, in characters. Tokenizing a document, and training a tokenizer on it,
# holds all of it at once; a single-line file of 50 MB took 4 GB. Longer documents are cut into
# pieces of at most this size, at sentence ends where there are any (pieces are ~1/4 of a chunk).
MAX_DOCUMENT_CHARS = 1_000_000
_WHITESPACE = re.compile(r"\s+")


def _cut(text: str, start: int, end: int) -> tuple[int, int]:
    """Where to end a piece that starts at ``start`` and may not pass ``end``: (piece end, next start).

    The last sentence end in the second half of the window, else the last whitespace, else ``end``.
    """
    low = start + (end - start) // 2
    last = None
    for last in _SENTENCE_END.finditer(text, low, end):  # noqa: B007 -- the loop keeps the last match
        pass
    if last is None:
        for last in _WHITESPACE.finditer(text, low, end):  # noqa: B007
            pass
    return (last.start(), last.end()) if last is not None else (end, end)


def split_long_text(text: str, max_chars: int) -> list[str]:
    """``text`` as pieces of at most ``max_chars`` characters, cut at sentence ends, else at white space.

    Text within a piece keeps its order; only the white space at a cut is dropped. A text that fits
    is returned whole.
    """
    if len(text) <= max_chars:
        return [text]
    pieces, start = [], 0
    while len(text) - start > max_chars:
        end, start_next = _cut(text, start, start + max_chars)
        pieces.append(text[start:end])
        start = start_next
    pieces.append(text[start:])
    return [piece for piece in pieces if piece.strip()]


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences; a text without sentence ends is one sentence."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _file_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if is_parquet(path):
        return "parquet"
    return "jsonl" if data_suffix(path) in (".jsonl", ".json") else "text"


def _open_file(path: Path, fmt: str, text_field: str, documents: str) -> FileTexts | list[str]:
    """One file's texts: read from it on each pass, or a list for a wiki dump."""
    if is_wiki_dump(path):
        return wiki_documents(path)
    if fmt not in ("auto", "text", "jsonl", "parquet"):
        raise UserError(f"data.format={fmt} is not supported; use auto, text, jsonl or parquet.")
    return FileTexts(path, _file_format(path, fmt), text_field, documents)


class Corpus:
    """The documents of some files or `datasets` splits, each a list of sentences, read lazily in order.

    Text is read a batch at a time: from the files themselves, from memory-mapped Arrow tables or
    from a `datasets` IterableDataset, so a corpus larger than memory can be processed chunk by chunk
    (see :meth:`chunks`).

    Args:
        tables: (name, table) pairs: :class:`~lmtrain.data.file_texts.FileTexts`, `datasets` tables
            or streams with a ``text`` column, or lists of texts; the name is shown in warnings.
        max_document_chars: documents longer than this are split into pieces of at most this many
            characters (see :func:`split_long_text`), with a warning, so memory stays bounded.
    """

    def __init__(self, tables: list[tuple[str, Any]], max_document_chars: int = MAX_DOCUMENT_CHARS):
        self.names = [name for name, _ in tables]
        self.tables = [table for _, table in tables]
        self.max_document_chars = max_document_chars
        self._count: int | None = None
        self._warned = False

    @classmethod
    def from_files(
        cls,
        files: list[Path],
        fmt: str = "auto",
        text_field: str = "text",
        documents: str = "line",
        max_document_chars: int = MAX_DOCUMENT_CHARS,
    ) -> Corpus:
        """The corpus of text, JSONL or Parquet files, optionally compressed (read when iterated).

        Args:
            files: the files (already checked with :func:`lmtrain.data.files.check_data_file`).
            fmt: auto (by extension) | text | jsonl | parquet.
            text_field: JSONL field / Parquet column holding a document.
            documents: text files: ``line`` (a document per line) or ``blank_line``.
            max_document_chars: see the class.
        """
        if documents not in ("line", "blank_line"):
            raise UserError(f"data.documents={documents} is not supported; use line or blank_line.")
        return cls([(str(path), _open_file(path, fmt, text_field, documents)) for path in files], max_document_chars)

    def texts(self) -> Iterator[str]:
        """Every non-blank document text, in order; an over-long document as consecutive pieces."""
        for name, table in zip(self.names, self.tables):
            if isinstance(table, list):
                batches: Iterable[list] = (table[i : i + BATCH] for i in range(0, len(table), BATCH))
            elif isinstance(table, FileTexts):
                batches = table.batches()
            else:
                batches = (batch["text"] for batch in table.iter(batch_size=BATCH))
            number = 0
            for batch in batches:
                for text in batch:
                    number += 1
                    if not isinstance(text, str) or not text.strip():
                        continue
                    if len(text) <= self.max_document_chars:
                        yield text
                        continue
                    pieces = split_long_text(text, self.max_document_chars)
                    self._warn(name, number, len(text), len(pieces))
                    yield from pieces

    def _warn(self, name: str, number: int, chars: int, pieces: int) -> None:
        """One warning per corpus (texts() is read several times) for the first over-long document."""
        if self._warned:
            return
        self._warned = True
        log.warning(
            "%s: document %d has %d characters; it is split into %d pieces of at most %d characters at "
            "sentence ends (also any other document over that length), to keep memory bounded",
            name,
            number,
            chars,
            pieces,
            self.max_document_chars,
        )

    def __iter__(self) -> Iterator[list[str]]:
        """Documents as lists of sentences; within a blank-line document each line is split too."""
        for text in self.texts():
            yield [s for line in text.splitlines() for s in split_sentences(line)]

    def __len__(self) -> int:
        """The number of documents (a non-blank text always gives at least one sentence)."""
        if self._count is None:
            self._count = sum(1 for _ in self.texts())
        return self._count

    def chunks(self, max_chars: int) -> Iterator[list[list[str]]]:
        """Consecutive lists of documents, each list ending at the document that reaches ``max_chars`` characters."""
        chunk: list[list[str]] = []
        chars = 0
        for doc in self:
            chunk.append(doc)
            chars += sum(len(s) for s in doc)
            if chars >= max_chars:
                yield chunk
                chunk, chars = [], 0
        if chunk:
            yield chunk


def load_documents(
    files: list[Path], fmt: str = "auto", text_field: str = "text", documents: str = "line"
) -> list[list[str]]:
    """All documents of ``files`` in memory (see :class:`Corpus`, which streams them)."""
    return list(Corpus.from_files(files, fmt, text_field, documents))


def held_out_mask(n_docs: int, eval_fraction: float, seed: int) -> np.ndarray:
    """(n_docs,) bool: the ``eval_fraction`` of documents (at least one) held out, chosen by ``seed``."""
    if n_docs < 2:
        raise UserError(
            f"the corpus has {n_docs} document(s); at least 2 are needed to hold one out "
            "for evaluation. Add text, or give data.eval_files."
        )
    order = list(range(n_docs))
    random.Random(seed).shuffle(order)
    n_eval = min(n_docs - 1, max(1, round(n_docs * eval_fraction)))
    mask = np.zeros(n_docs, dtype=bool)
    mask[order[:n_eval]] = True
    return mask


def split_documents(docs: list[list[str]], eval_fraction: float, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Hold out ``eval_fraction`` of the documents (at least one), chosen by ``seed``."""
    held_out = held_out_mask(len(docs), eval_fraction, seed)
    return [d for d, h in zip(docs, held_out) if not h], [d for d, h in zip(docs, held_out) if h]
