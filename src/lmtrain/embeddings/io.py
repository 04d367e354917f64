"""Word vectors on disk: word2vec binary and text (with header), GloVe text (without).

lmtrain writes no pickle, and reads none unless asked to: gensim's ``KeyedVectors.save`` format
(``.kv``) is a Python pickle, and unpickling a file runs whatever code its author put in it. A
pickled file is refused with an explanation unless the user opts in (``embed.allow_pickle=true``)
for a file they trust.

Every file written here loads with gensim's own loaders:
``KeyedVectors.load_word2vec_format("vectors.bin", binary=True)``,
``KeyedVectors.load_word2vec_format("vectors.w2v.txt")`` and
``KeyedVectors.load_word2vec_format("vectors.glove.txt", no_header=True)``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
from gensim.models import KeyedVectors

from lmtrain.config.commands import LoadVectorsConfig
from lmtrain.embeddings.method import EmbeddingMethod
from lmtrain.errors import UserError
from lmtrain.files.atomic import write_with

log = logging.getLogger(__name__)

BINARY_FILE = "vectors.bin"
WORD2VEC_FILE = "vectors.w2v.txt"
GLOVE_FILE = "vectors.glove.txt"
FORMATS = ("auto", "word2vec", "glove", "kv")

# Protocol 2+ pickles (every gensim .kv) start with the PROTO opcode 0x80.
_PICKLE_MARKER = b"\x80"


def keyed_vectors(words: list[str], vectors: np.ndarray, counts: Optional[np.ndarray] = None) -> KeyedVectors:
    """KeyedVectors holding ``vectors[i]`` for ``words[i]`` (and each word's ``count``)."""
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, vectors.astype(np.float32))
    if counts is not None:
        kv.expandos["count"] = np.asarray(counts, dtype=np.int64).copy()
    return kv


def save_vectors(kv: KeyedVectors, directory: str | Path) -> dict[str, Path]:
    """Write ``kv`` as word2vec binary, word2vec text and GloVe text; returns format -> path.

    The binary file keeps the float32 values exactly and is the one to load again.
    """
    directory = Path(directory)
    paths = {"binary": directory / BINARY_FILE, "word2vec": directory / WORD2VEC_FILE, "glove": directory / GLOVE_FILE}
    for kind, binary, header in (("binary", True, True), ("word2vec", False, True), ("glove", False, False)):
        write_with(paths[kind], functools.partial(_save_vectors, kv, binary=binary, header=header))
    return paths


def _save_vectors(kv: Any, tmp: Path, binary: bool, header: bool) -> None:
    """Write ``kv`` to ``tmp`` in word2vec's format (binary or text, with or without the count header)."""
    kv.save_word2vec_format(str(tmp), binary=binary, write_header=header)


def is_pickle(path: Path) -> bool:
    """Whether ``path`` starts like a Python pickle (as gensim's ``.kv`` files do)."""
    with open(path, "rb") as f:
        return f.read(1) == _PICKLE_MARKER


def detect_format(path: Path) -> str:
    """Guess the format of a vectors file: kv (a pickle), word2vec (``.bin`` or a header) or glove."""
    if is_pickle(path):
        return "kv"
    if path.suffix == ".bin":
        return "word2vec"
    with open(path, "rb") as f:
        fields = f.readline(10_000).split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return "word2vec"  # header "<count> <dimensions>"
    return "glove"


def pickle_refused(path: Path) -> UserError:
    """The error for a pickled vectors file loaded without ``embed.allow_pickle=true``."""
    return UserError(
        f"'{path}' is a Python pickle (gensim's KeyedVectors.save / .kv format), whatever its name "
        "says, and lmtrain does not unpickle files by default: loading a pickle runs any code its "
        "author put in it. Use word2vec or GloVe files instead (an `lmtrain embed` run directory "
        "has vectors.bin, vectors.w2v.txt and vectors.glove.txt). Only if you made this file "
        "yourself or trust its source, add embed.allow_pickle=true to load it as it is, or convert "
        "it once in Python with KeyedVectors.load(file).save_word2vec_format('vectors.bin', "
        "binary=True)."
    )


def load_vectors(path: str | Path, file_format: str = "auto", allow_pickle: bool = False) -> KeyedVectors:
    """Load word vectors; UserError naming the file when it is missing, unreadable or a pickle.

    Args:
        path: a word2vec binary (``.bin``) or text file, a GloVe text file, or (with
            ``allow_pickle``) a gensim ``.kv`` file.
        file_format: auto | word2vec | glove | kv.
        allow_pickle: unpickle a ``.kv`` file. Only for trusted files: unpickling can run code.
    """
    path = Path(path).expanduser()
    if file_format not in FORMATS:
        raise UserError(f"unknown format={file_format}; use one of {', '.join(FORMATS)}.")
    if not path.is_file():
        raise UserError(
            f"vectors file '{path}' does not exist; set path= to a vectors.bin, "
            "vectors.w2v.txt or vectors.glove.txt file, e.g. from an earlier "
            "`lmtrain embed` run directory."
        )
    chosen = detect_format(path) if file_format == "auto" else file_format
    if (chosen == "kv" or is_pickle(path)) and not allow_pickle:
        raise pickle_refused(path)
    try:
        if chosen == "kv":
            log.warning("unpickling %s (embed.allow_pickle=true): only do this for files you trust", path)
            kv = KeyedVectors.load(str(path))
        else:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=path.suffix == ".bin", no_header=chosen == "glove")
    except Exception as error:  # gensim / pickle / numpy raise many types for a bad file
        raise UserError(
            f"cannot read '{path}' as {chosen} vectors ({type(error).__name__}: {error}). "
            "Check the file, or pass format=word2vec|glove if the guess was wrong."
        ) from None
    kv = getattr(kv, "wv", kv)  # a whole saved gensim model (Word2Vec, FastText): take its vectors
    if not isinstance(kv, KeyedVectors) or len(kv) == 0:
        raise UserError(f"'{path}' holds no word vectors; check the file.")
    log.info("loaded %d vectors of dimension %d from %s (%s)", len(kv), kv.vector_size, path, chosen)
    return kv


class LoadVectorsMethod(EmbeddingMethod):
    """``method=load``: existing vectors (word2vec text / binary, GloVe text; a gensim pickle only if allowed)."""

    config_class = LoadVectorsConfig
    trains = False

    def load(self, path: str, file_format: str) -> KeyedVectors:
        """See :meth:`EmbeddingMethod.load`."""
        return load_vectors(path, file_format, self.cfg.allow_pickle)
