"""Word-embedding corpora: where the text comes from and how it becomes lists of words.

A corpus is a restartable iterable of documents (lists of tokens): every ``iter()`` re-reads
its files, so Word2Vec's several passes and GloVe's chunked counting never hold the corpus in
memory. The bundled Wikipedia excerpt is the exception: its article texts (about 2.5 MB) are
extracted from the XML dump once and kept, as extracting takes seconds per pass.
"""

from __future__ import annotations

import glob
import json
import re
import string
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lmtrain.data.corpus import is_wiki_dump, wiki_documents
from lmtrain.errors import UserError

WIKI_EXCERPT = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
# short names of bundled gensim corpora; any other gensim test_data file name is accepted too.
# lee_wiki is pretrain's default corpus too (configs/data/lee_wiki.yaml): ~450k words.
BUNDLED_ALIASES = {
    "lee": ("lee_background.cor",),
    "lee_test": ("lee.cor",),
    "lee_wiki": ("lee_background.cor", WIKI_EXCERPT),
}

_PUNCT = string.punctuation + "“”‘’«»…–—"
_WHITESPACE = re.compile(r"\s+")


def _simple_preprocess(text: str) -> list[str]:
    from gensim.utils import simple_preprocess

    return simple_preprocess(text)


def _lower(text: str) -> list[str]:
    return text.lower().split()


def _lower_strip_punct(text: str) -> list[str]:
    tokens = (token.strip(_PUNCT) for token in _WHITESPACE.split(text.lower()))
    return [token for token in tokens if token]


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    # gensim: lowercase, alphabetic tokens of 2..15 characters (drops numbers and punctuation)
    "simple_preprocess": _simple_preprocess,
    # lowercase, split on whitespace, keep everything
    "lower": _lower,
    # lowercase, split on whitespace, strip punctuation from both ends of each token
    "lower_strip_punct": _lower_strip_punct,
}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    """The tokenizer called ``name`` (see ``TOKENIZERS``); UserError for an unknown name."""
    if name not in TOKENIZERS:
        raise UserError(f"unknown tokenizer embed.tokenize={name}. Choose one of: {', '.join(TOKENIZERS)}.")
    return TOKENIZERS[name]


def bundled_paths(name: str, what: str = "embed.corpus") -> list[Path]:
    """Paths of the files of a corpus shipped in gensim's test_data (``lee_wiki``: two files).

    Args:
        name: an alias from ``BUNDLED_ALIASES`` or a file name in gensim's test_data folder.
        what: the config key that named it, for the error message.
    """
    from gensim.test.utils import datapath

    paths = [Path(datapath(file)) for file in BUNDLED_ALIASES.get(name, (name,))]
    for path in paths:
        if not path.is_file():
            examples = sorted(p.name for p in path.parent.glob("*.cor"))[:8]
            raise UserError(
                f"{what}={name} is not a corpus bundled with gensim (looked for {path}). Use "
                f"{', '.join(BUNDLED_ALIASES)} or a file name from gensim's test_data such as "
                f"{', '.join(examples)}; for your own text set embed.train_files=[file.txt]."
            )
    return paths


def resolve_files(patterns: list[str]) -> list[Path]:
    """Expand globs in ``patterns`` and check every file exists (UserError otherwise)."""
    files: list[Path] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = sorted(glob.glob(str(Path(pattern).expanduser())))
            if not matches:
                raise UserError(
                    f"embed.train_files: no file matches '{pattern}'. Check the pattern and the current directory."
                )
            files.extend(Path(m) for m in matches)
            continue
        path = Path(pattern).expanduser()
        if not path.is_file():
            raise UserError(
                f"embed.train_files: file '{pattern}' does not exist (resolved to "
                f"{path.resolve()}). Check the path, or use an absolute one."
            )
        files.append(path)
    return files


def _file_format(path: Path, file_format: str) -> str:
    if is_wiki_dump(path):
        return "wiki"
    if file_format == "auto":
        return "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "text"
    if file_format not in ("text", "jsonl"):
        raise UserError(f"unknown embed.file_format={file_format}; use auto, text or jsonl.")
    return file_format


def _read_texts(path: Path, file_format: str, text_field: str) -> Iterator[str]:
    """Yield the documents of one file: its lines, or the ``text_field`` of each JSON line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if file_format == "text":
                yield line
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(
                    f"{path}:{line_no} is not valid JSON ({error.msg}); a .jsonl file "
                    "needs one JSON object per line, or set embed.file_format=text."
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise UserError(
                    f"{path}:{line_no} has no string field '{text_field}'; set "
                    "embed.text_field to the field that holds the text."
                )
            yield record[text_field]


class Corpus:
    """A restartable iterable of tokenised documents read from files.

    Args:
        files: the text / JSONL files, read in order on every pass.
        tokenize: turns one document's text into tokens.
        file_format: auto (by extension) | text (one document per line) | jsonl.
        text_field: the JSONL field holding the document.
    """

    def __init__(
        self,
        files: list[Path],
        tokenize: Callable[[str], list[str]],
        file_format: str = "auto",
        text_field: str = "text",
    ):
        self.files = list(files)
        self.tokenize = tokenize
        self.formats = [_file_format(path, file_format) for path in self.files]
        self.text_field = text_field
        self._wiki_texts: dict[Path, list[str]] = {}

    def _texts(self, path: Path, file_format: str) -> Iterable[str]:
        if file_format != "wiki":
            return _read_texts(path, file_format, self.text_field)
        if path not in self._wiki_texts:
            self._wiki_texts[path] = wiki_documents(path)
        return self._wiki_texts[path]

    def __iter__(self) -> Iterator[list[str]]:
        for path, file_format in zip(self.files, self.formats):
            for text in self._texts(path, file_format):
                tokens = self.tokenize(text)
                if tokens:
                    yield tokens

    def describe(self) -> str:
        """The files of the corpus, for messages."""
        names = [str(path) for path in self.files]
        return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:3])} and {len(names) - 3} more"


def build_corpus(
    corpus: str, train_files: list[str], tokenize: str, file_format: str = "auto", text_field: str = "text"
) -> Corpus:
    """The corpus of ``lmtrain embed``: ``train_files`` if given, else the bundled ``corpus``.

    Args:
        corpus: bundled corpus name (``lee_wiki``, ``lee`` or a gensim test_data file name).
        train_files: the user's files (globs allowed); when non-empty they replace ``corpus``.
        tokenize: a name from ``TOKENIZERS``.
        file_format: auto | text | jsonl.
        text_field: the JSONL field holding a document.
    """
    files = resolve_files(train_files) if train_files else bundled_paths(corpus)
    return Corpus(files, get_tokenizer(tokenize), file_format=file_format, text_field=text_field)
