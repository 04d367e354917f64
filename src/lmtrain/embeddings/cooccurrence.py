"""GloVe's co-occurrence matrix: a symmetric window with 1/distance weighting, per document.

X[i, j] sums 1/d over every occurrence of word j at distance d (1 <= d <= window) from word i
inside the same document, on either side (glove.c's cooccur with -symmetric 1). Counting is
vectorised per window offset over a chunk of documents; chunks are summed as sparse matrices,
so memory holds one chunk's pairs plus the (sparse) result, never the corpus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


def _chunks(docs: Iterable[np.ndarray], chunk_tokens: int) -> Iterator[list[np.ndarray]]:
    """Group documents into lists holding at least ``chunk_tokens`` tokens (the last: fewer)."""
    chunk: list[np.ndarray] = []
    size = 0
    for doc in docs:
        if len(doc) == 0:
            continue
        chunk.append(doc)
        size += len(doc)
        if size >= chunk_tokens:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def count_chunk(docs: list[np.ndarray], vocab_size: int, window: int) -> sp.csr_matrix:
    """One-sided counts of a chunk: U[i, j] = sum of 1/d where j follows i at distance d.

    Args:
        docs: documents as int arrays of word ids in [0, vocab_size).
        vocab_size: V, the matrix is (V, V).
        window: the largest distance counted.

    Returns:
        (V, V) float64 CSR matrix; the symmetric counts are ``U + U.T``.
    """
    ids = np.concatenate(docs).astype(np.int64)  # (N,) all tokens of the chunk
    lengths = np.array([len(d) for d in docs])
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(ids)) - starts  # (N,) position of each token inside its document
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        # token t and t+d are in the same document iff t+d sits at least d into its document
        same_doc = position[d:] >= d  # (N - d,)
        rows.append(ids[:-d][same_doc])
        cols.append(ids[d:][same_doc])
        vals.append(np.full(int(same_doc.sum()), 1.0 / d))
    if not rows or sum(len(r) for r in rows) == 0:
        return sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    coo = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(vocab_size, vocab_size)
    )
    return coo.tocsr()  # duplicate (i, j) pairs are summed here


def count_cooccurrences(
    docs: Iterable[np.ndarray], vocab_size: int, window: int, chunk_tokens: int = 1_000_000
) -> sp.coo_matrix:
    """Symmetric co-occurrence counts of a stream of documents.

    Args:
        docs: documents as int arrays of word ids (out-of-vocabulary words already removed).
        vocab_size: V.
        window: context words counted on each side.
        chunk_tokens: tokens per counting chunk; bounds the memory of the pair arrays.

    Returns:
        (V, V) float64 COO matrix X with X == X.T, duplicates summed, no explicit zeros.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    total = sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    n_chunks = 0
    for chunk in _chunks(docs, chunk_tokens):
        total = total + count_chunk(chunk, vocab_size, window)
        n_chunks += 1
    symmetric = (total + total.T).tocoo()
    symmetric.sum_duplicates()
    symmetric.eliminate_zeros()
    log.info("co-occurrence: %d nonzero entries from %d chunk(s)", symmetric.nnz, n_chunks)
    return symmetric
