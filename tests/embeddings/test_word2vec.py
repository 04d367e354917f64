"""Word2Vec through gensim: per-epoch loss bookkeeping and settings checks."""

import numpy as np
import pytest

from lmtrain.embeddings.word2vec import train_word2vec
from lmtrain.errors import UserError


def test_epoch_losses_are_per_epoch_and_survive_several_workers(synonym_docs):
    docs = synonym_docs * 4  # ~20k words: several gensim jobs per epoch
    kwargs = dict(vector_size=16, window=2, min_count=1, epochs=4, sg=1, sample=0, seed=1, batch_words=500)
    seen = []
    _, single, tokens = train_word2vec(
        docs, "test", workers=1, **kwargs, on_epoch=lambda e, loss, wps, s: seen.append((e, loss, wps))
    )
    _, multi, _ = train_word2vec(docs, "test", workers=3, **kwargs)
    assert tokens == sum(len(d) for d in docs)
    assert [e for e, _, _ in seen] == [1, 2, 3, 4] and all(wps > 0 for _, _, wps in seen)
    assert [loss for _, loss, _ in seen] == single
    assert single[-1] < single[0]  # per-epoch figures, not a running total
    # gensim's own tally loses whole jobs when workers race; ours stays within noise of workers=1
    for a, b in zip(single, multi):
        assert b == pytest.approx(a, rel=0.1)


@pytest.mark.parametrize("settings, key", [(dict(sg=2), "embed.sg"), (dict(hs=0, negative=0), "embed.negative")])
def test_bad_settings_are_user_errors(synonym_docs, settings, key):
    with pytest.raises(UserError, match=key):
        train_word2vec(synonym_docs, "test", **settings)


def test_min_count_error_names_the_key_and_the_files():
    with pytest.raises(UserError) as error:
        train_word2vec([["a", "b"], ["a"]], "corpus.txt", min_count=3)
    message = str(error.value)
    assert "no word occurs at least min_count=3 times in corpus.txt" in message
    assert "lower embed.min_count" in message and "occurs 2 times" in message


def test_vectors_equal_gensim_called_directly(synonym_docs):
    from gensim.models import Word2Vec

    settings = dict(
        vector_size=16, window=3, min_count=2, epochs=3, sg=1, hs=0, negative=5, sample=1e-3, workers=1, seed=7
    )
    kv, _, _ = train_word2vec(synonym_docs, "test", lr=0.025, min_lr=1e-4, **settings)
    model = Word2Vec(synonym_docs, alpha=0.025, min_alpha=1e-4, **settings)
    assert kv.index_to_key == model.wv.index_to_key
    np.testing.assert_array_equal(kv.vectors, model.wv.vectors)
