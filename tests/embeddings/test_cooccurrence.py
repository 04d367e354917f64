"""Co-occurrence counting equals a brute-force count: window, 1/d, document boundaries, chunks."""

import numpy as np
import pytest

from lmtrain.embeddings.cooccurrence import count_cooccurrences
from lmtrain.embeddings.vocabulary import Vocabulary, encode


def brute_force(docs: list[list[int]], vocab_size: int, window: int) -> np.ndarray:
    counts = np.zeros((vocab_size, vocab_size))
    for doc in docs:
        for i, a in enumerate(doc):
            for j in range(i + 1, min(i + window, len(doc) - 1) + 1):
                b, d = doc[j], j - i
                counts[a, b] += 1.0 / d
                counts[b, a] += 1.0 / d
    return counts


@pytest.mark.parametrize("window", [1, 2, 4])
@pytest.mark.parametrize("chunk_tokens", [1, 7, 10_000])
def test_counts_equal_brute_force(window, chunk_tokens):
    rng = np.random.default_rng(window)
    lengths = [0, 1, 2, 5, 9, 3, 12, 1, 6]
    docs = [list(rng.integers(0, 6, size=n)) for n in lengths]
    got = count_cooccurrences((np.array(d, dtype=np.int32) for d in docs), 6, window, chunk_tokens)
    np.testing.assert_allclose(got.toarray(), brute_force(docs, 6, window), rtol=1e-12)
    assert (got != got.T).nnz == 0


def test_window_does_not_cross_documents():
    docs = [np.array([0, 1]), np.array([2, 3])]
    x = count_cooccurrences(iter(docs), 4, window=5).toarray()
    assert x[1, 2] == 0 and x[0, 3] == 0 and x[0, 2] == 0
    assert x[0, 1] == 1.0 and x[2, 3] == 1.0


def test_distance_weighting_and_repeats():
    # a b a: (a,b) at d=1 twice, (a,a) at d=2 once (counted in both directions -> 2 * 1/2)
    x = count_cooccurrences(iter([np.array([0, 1, 0])]), 2, window=2).toarray()
    np.testing.assert_allclose(x, [[1.0, 2.0], [2.0, 0.0]])


def test_out_of_vocabulary_words_are_removed_before_windowing():
    vocab = Vocabulary(words=["a", "b"], counts=np.array([1, 1]), total_tokens=3)
    ids = list(encode([["a", "unknown", "b"]], vocab))
    x = count_cooccurrences(iter(ids), 2, window=1).toarray()
    assert x[0, 1] == 1.0  # as in glove.c: the unknown word takes no window position


def test_counts_of_a_toy_text_equal_brute_force():
    text = ["the cat sat on the mat", "the dog sat on the cat", "a mat"]
    docs = [line.split() for line in text]
    vocab = Vocabulary(words=["the", "cat", "sat", "on", "mat", "dog"], counts=np.ones(6), total_tokens=15)
    ids = [[vocab.index[w] for w in doc if w in vocab.index] for doc in docs]  # "a" is dropped
    got = count_cooccurrences(encode(docs, vocab), len(vocab), window=3, chunk_tokens=4)
    np.testing.assert_allclose(got.toarray(), brute_force(ids, len(vocab), 3), rtol=1e-12)
    # the-cat: d=1 and d=3 in the first line, d=1 in the second (its d=5 pair is outside the window)
    assert got.toarray()[0, 1] == pytest.approx(1 + 1 / 3 + 1)
