"""Word vectors on disk: gensim KeyedVectors, word2vec text (with header), GloVe text (without).

Every file written here loads with gensim's own loaders:
``KeyedVectors.load("vectors.kv")``, ``KeyedVectors.load_word2vec_format("vectors.w2v.txt")`` and
``KeyedVectors.load_word2vec_format("vectors.glove.txt", no_header=True)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
from gensim.models import KeyedVectors

from lmtrain.errors import UserError

log = logging.getLogger(__name__)

KV_FILE = "vectors.kv"
WORD2VEC_FILE = "vectors.w2v.txt"
GLOVE_FILE = "vectors.glove.txt"
FORMATS = ("auto", "word2vec", "glove", "kv")


def keyed_vectors(words: list[str], vectors: np.ndarray, counts: Optional[np.ndarray] = None) -> KeyedVectors:
    """KeyedVectors holding ``vectors[i]`` for ``words[i]`` (and each word's ``count``)."""
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, vectors.astype(np.float32))
    if counts is not None:
        kv.expandos["count"] = np.asarray(counts, dtype=np.int64).copy()
    return kv


def save_vectors(kv: KeyedVectors, directory: str | Path) -> dict[str, Path]:
    """Write ``kv`` in the three formats into ``directory``; returns format -> path."""
    directory = Path(directory)
    paths = {"kv": directory / KV_FILE, "word2vec": directory / WORD2VEC_FILE,
             "glove": directory / GLOVE_FILE}
    kv.save(str(paths["kv"]))
    kv.save_word2vec_format(str(paths["word2vec"]), binary=False, write_header=True)
    kv.save_word2vec_format(str(paths["glove"]), binary=False, write_header=False)
    return paths


def detect_format(path: Path) -> str:
    """Guess the format of a vectors file: kv (pickle), word2vec (binary or header) or glove."""
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        first_line = f.readline(10_000)
    if head[:1] == b"\x80":  # a pickle protocol marker: gensim's KeyedVectors.save
        return "kv"
    if path.suffix == ".bin":
        return "word2vec"
    fields = first_line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return "word2vec"  # header "<count> <dimensions>"
    return "glove"


def load_vectors(path: str | Path, file_format: str = "auto") -> KeyedVectors:
    """Load word vectors; UserError naming the file when it is missing or unreadable.

    Args:
        path: a gensim ``.kv`` file, a word2vec text / binary (``.bin``) file, or a GloVe text file.
        file_format: auto | word2vec | glove | kv.
    """
    path = Path(path).expanduser()
    if file_format not in FORMATS:
        raise UserError(f"unknown format={file_format}; use one of {', '.join(FORMATS)}.")
    if not path.is_file():
        raise UserError(f"vectors file '{path}' does not exist; set path= to a vectors.kv, "
                        "vectors.w2v.txt or vectors.glove.txt file, e.g. from an earlier "
                        "`lmtrain embed` run directory.")
    chosen = detect_format(path) if file_format == "auto" else file_format
    try:
        if chosen == "kv":
            kv = KeyedVectors.load(str(path))
        else:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=path.suffix == ".bin",
                                                   no_header=chosen == "glove")
    except Exception as error:  # gensim / pickle / numpy raise many types for a bad file
        raise UserError(f"cannot read '{path}' as {chosen} vectors ({type(error).__name__}: {error}). "
                        "Check the file, or pass format=word2vec|glove|kv if the guess was wrong.") from None
    kv = getattr(kv, "wv", kv)  # a whole saved gensim model (Word2Vec, FastText): take its vectors
    if not isinstance(kv, KeyedVectors) or len(kv) == 0:
        raise UserError(f"'{path}' holds no word vectors; check the file.")
    log.info("loaded %d vectors of dimension %d from %s (%s)", len(kv), kv.vector_size, path, chosen)
    return kv
