"""Which corpus a pretraining data config names: bundled gensim files, the user's files (globs,
folders, compressed text, Parquet) or a `datasets` dataset (``data.source=hf``).

Each source gives an identity (the cache keys of its tokenizer and examples) without reading
the corpus, and opens the (train, held-out) corpora only when they are needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lmtrain.config.data import TextDataConfig
from lmtrain.data.corpus import Corpus, bundled_file, is_wiki_dump
from lmtrain.data.files import check_data_file, expand_paths
from lmtrain.data.hf_datasets import HfDataset, text_rows
from lmtrain.data.store import file_digest
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

SOURCES = ("bundled", "files", "hf")
PROGRESS_SECONDS = 10.0  # between the lines that say how far checking the files has come
_MANY_FILES, _MANY_BYTES = 100, 1 << 30  # files checked with a line that says so first


@dataclass
class CorpusSource:
    """A corpus's identity and how to open it.

    Attributes:
        digests: content identity of the training data, ``"eval"``, then that of the held-out data.
        open: returns the (train, held-out) corpora; held-out is None when documents are held out of train.
    """

    digests: list[str]
    open: Callable[[], tuple[Corpus, Corpus | None]]


def _checked(path: Path, key: str) -> str:
    """The content digest of ``path`` after checking it is readable (wiki dumps are read by their own reader)."""
    return file_digest(path) if path.exists() and is_wiki_dump(path) else check_data_file(path, key)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _checked_all(paths: list[Path], key: str) -> list[str]:
    """The content digests of ``paths`` (each checked readable), saying how far it has come when it takes long."""
    total = sum(path.stat().st_size for path in paths if path.is_file())
    if len(paths) >= _MANY_FILES or total >= _MANY_BYTES:
        log.info("checking %d files (%s) of %s", len(paths), _size(total), key)
    digests, done, reported = [], 0, time.monotonic()
    for number, path in enumerate(paths, 1):
        digests.append(_checked(path, key))
        done += path.stat().st_size
        if time.monotonic() - reported >= PROGRESS_SECONDS:
            log.info("checked %d of %d files (%s of %s) of %s", number, len(paths), _size(done), _size(total), key)
            reported = time.monotonic()
    return digests


def _file_source(data_cfg: TextDataConfig) -> CorpusSource:
    if data_cfg.source == "bundled":
        train, key = [bundled_file(name) for name in data_cfg.bundled], "data.bundled"
    else:
        if not data_cfg.train_files:
            raise UserError(
                "data.train_files is empty: give your corpus, e.g. "
                "data=text data.train_files=[corpus/a.txt,corpus/b.txt] or data.train_files=[corpus/*.txt]."
            )
        train, key = expand_paths(list(data_cfg.train_files), "data.train_files"), "data.train_files"
    eval_files = expand_paths(list(data_cfg.eval_files), "data.eval_files")
    digests = [*_checked_all(train, key), "eval", *_checked_all(eval_files, "data.eval_files")]

    def read(files: list[Path]) -> Corpus:
        return Corpus.from_files(
            files, fmt=data_cfg.format, text_field=data_cfg.text_field, documents=data_cfg.documents
        )

    def open_corpora() -> tuple[Corpus, Corpus | None]:
        held_out = read(eval_files) if eval_files else None
        return read(train), held_out

    return CorpusSource(digests, open_corpora)


def _hf_source(data_cfg: TextDataConfig) -> CorpusSource:
    dataset = HfDataset(data_cfg.path, data_cfg.config_name, data_cfg.streaming)
    train = dataset.split(data_cfg.train_split, "data.train_split")
    held_out = dataset.split(data_cfg.eval_split, "data.eval_split") if data_cfg.eval_split else None
    for split in (train, held_out) if held_out else (train,):
        split.column(data_cfg.text_field, "data.text_field")
    digests = ["hf", *train.identity, "eval", *(held_out.identity if held_out else [])]

    def corpus(split) -> Corpus:
        return Corpus([(split.where, text_rows(split.rows, data_cfg.text_field, split.where))])

    def open_corpora() -> tuple[Corpus, Corpus | None]:
        return corpus(train), corpus(held_out) if held_out else None

    return CorpusSource(digests, open_corpora)


def corpus_source(data_cfg: TextDataConfig) -> CorpusSource:
    """The corpus ``data_cfg`` names, its files checked (or its dataset resolved) but not yet read.

    Args:
        data_cfg: the ``data`` config group.
    Raises:
        UserError: an unknown source, a missing or unreadable file, an empty glob, a dataset that
            cannot be found.
    """
    if data_cfg.source in ("bundled", "files"):
        return _file_source(data_cfg)
    if data_cfg.source == "hf":
        return _hf_source(data_cfg)
    raise UserError(f"data.source={data_cfg.source} is not supported; use one of {', '.join(SOURCES)}.")
