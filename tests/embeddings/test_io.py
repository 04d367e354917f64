"""Saved vectors load back through gensim's own loaders and load_vectors; pickles are refused."""

import pickle

import numpy as np
import pytest
from gensim.models import KeyedVectors

from lmtrain.embeddings.io import detect_format, keyed_vectors, load_vectors, save_vectors
from lmtrain.errors import UserError


class TouchOnUnpickle:
    """Unpickling this object creates ``marker``: a stand-in for a pickle that runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious_pickle(path, marker):
    """A file named like text vectors that, if unpickled, creates ``marker``."""
    path.write_bytes(pickle.dumps(TouchOnUnpickle(marker), protocol=4))
    return path


@pytest.fixture
def kv():
    rng = np.random.default_rng(0)
    return keyed_vectors(["the", "cat", "sat"], rng.normal(size=(3, 4)).astype(np.float32), counts=np.array([9, 5, 2]))


def test_files_round_trip_through_gensim(kv, tmp_path):
    paths = save_vectors(kv, tmp_path)
    loaded = {
        "binary": KeyedVectors.load_word2vec_format(str(paths["binary"]), binary=True),
        "word2vec": KeyedVectors.load_word2vec_format(str(paths["word2vec"])),
        "glove": KeyedVectors.load_word2vec_format(str(paths["glove"]), no_header=True),
    }
    assert paths["word2vec"].read_text().splitlines()[0] == "3 4"
    assert paths["glove"].read_text().splitlines()[0].split()[0] == "the"  # no header line
    assert not any(path.read_bytes().startswith(b"\x80") for path in paths.values())
    for name, other in loaded.items():
        assert other.index_to_key == ["the", "cat", "sat"], name
        np.testing.assert_allclose(other.vectors, kv.vectors, rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(loaded["binary"].vectors, kv.vectors)  # binary is exact


def test_load_vectors_detects_each_format(kv, tmp_path):
    paths = save_vectors(kv, tmp_path)
    expected = {"binary": "word2vec", "word2vec": "word2vec", "glove": "glove"}
    for name, path in paths.items():
        assert detect_format(path) == expected[name]
        np.testing.assert_allclose(load_vectors(path).vectors, kv.vectors, rtol=1e-6)
        np.testing.assert_allclose(load_vectors(path, expected[name]).vectors, kv.vectors, rtol=1e-6)


def test_a_pickle_is_never_unpickled_without_the_opt_in(tmp_path):
    marker = tmp_path / "pwned"
    crafted = write_malicious_pickle(tmp_path / "vectors.txt", marker)
    for file_format in ("auto", "kv", "word2vec", "glove"):
        with pytest.raises(UserError, match=r"vectors.txt' is a Python pickle .* embed.allow_pickle=true"):
            load_vectors(crafted, file_format)
    assert not marker.exists()


def test_a_trusted_kv_file_loads_with_the_opt_in(kv, tmp_path):
    kv.save(str(tmp_path / "vectors.kv"))
    with pytest.raises(UserError, match="does not unpickle files by default"):
        load_vectors(tmp_path / "vectors.kv")
    loaded = load_vectors(tmp_path / "vectors.kv", allow_pickle=True)
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)


def test_missing_and_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_vectors(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\ncat 0.1 zebra 0.3\n")
    with pytest.raises(UserError, match=r"cannot read .*bad.txt.* as word2vec"):
        load_vectors(bad)
    with pytest.raises(UserError, match="unknown format"):
        load_vectors(bad, "fasttext")
