"""Saved vectors load back through gensim's own loaders, and through load_vectors."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from lmtrain.embeddings.io import detect_format, keyed_vectors, load_vectors, save_vectors
from lmtrain.errors import UserError


@pytest.fixture
def kv():
    rng = np.random.default_rng(0)
    return keyed_vectors(["the", "cat", "sat"], rng.normal(size=(3, 4)).astype(np.float32),
                         counts=np.array([9, 5, 2]))


def test_files_round_trip_through_gensim(kv, tmp_path):
    paths = save_vectors(kv, tmp_path)
    loaded = {
        "kv": KeyedVectors.load(str(paths["kv"])),
        "word2vec": KeyedVectors.load_word2vec_format(str(paths["word2vec"])),
        "glove": KeyedVectors.load_word2vec_format(str(paths["glove"]), no_header=True),
    }
    assert paths["word2vec"].read_text().splitlines()[0] == "3 4"
    assert paths["glove"].read_text().splitlines()[0].split()[0] == "the"  # no header line
    for name, other in loaded.items():
        assert other.index_to_key == ["the", "cat", "sat"], name
        np.testing.assert_allclose(other.vectors, kv.vectors, rtol=1e-6, err_msg=name)


def test_load_vectors_detects_each_format(kv, tmp_path):
    paths = save_vectors(kv, tmp_path)
    for name, path in paths.items():
        assert detect_format(path) == name
        np.testing.assert_allclose(load_vectors(path).vectors, kv.vectors, rtol=1e-6)
        np.testing.assert_allclose(load_vectors(path, name).vectors, kv.vectors, rtol=1e-6)


def test_missing_and_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_vectors(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\ncat 0.1 zebra 0.3\n")
    with pytest.raises(UserError, match=r"cannot read .*bad.txt.* as word2vec"):
        load_vectors(bad)
    with pytest.raises(UserError, match="unknown format"):
        load_vectors(bad, "fasttext")
