"""Both methods learn that two words used in identical contexts are near each other."""

import numpy as np

from lmtrain.embeddings.glove import fit_glove
from lmtrain.embeddings.word2vec import train_word2vec


def assert_planted_pair_ranks_high(kv):
    rng = np.random.default_rng(0)
    words = [w for w in kv.index_to_key if w not in ("alpha", "beta")]
    random_pairs = [kv.similarity(*rng.choice(words, size=2, replace=False)) for _ in range(200)]
    planted = kv.similarity("alpha", "beta")
    assert planted > np.percentile(random_pairs, 99)
    assert "beta" in [w for w, _ in kv.most_similar("alpha", topn=3)]


def test_word2vec_ranks_the_planted_synonyms(synonym_docs):
    kv, losses, _ = train_word2vec(
        synonym_docs, "test", vector_size=20, window=2, min_count=1, epochs=15, sg=1, sample=0, workers=1, seed=0
    )
    assert losses[-1] < losses[0]
    assert_planted_pair_ranks_high(kv)


def test_glove_ranks_the_planted_synonyms(synonym_docs):
    kv, losses, _ = fit_glove(
        synonym_docs,
        "test",
        vector_size=20,
        window=2,
        min_count=1,
        epochs=60,
        lr=0.05,
        x_max=10.0,
        batch_size=256,
        seed=0,
        device="cpu",
        threads=1,
    )
    assert losses[-1] < losses[0]
    assert_planted_pair_ranks_high(kv)
