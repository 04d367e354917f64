"""Analogy accuracy and similarity correlation on hand-made benchmark files."""

import math

import numpy as np
import pytest

from lmtrain.embeddings.evaluation import (
    evaluate,
    evaluate_analogies,
    evaluate_similarity,
    main_metric,
    nearest_neighbours,
)
from lmtrain.embeddings.io import keyed_vectors

# king - man + woman = queen exactly; paris - france + italy lands on berlin, not rome
WORDS = {
    "king": [1, 1, 0, 0],
    "queen": [1, 0, 1, 0],
    "man": [0, 1, 0, 0.1],
    "woman": [0, 0, 1, 0.1],
    "paris": [0, 0, 0, 1],
    "france": [0.5, 0, 0, 1],
    "italy": [0, 0.5, 0.5, 1],
    "rome": [1, 1, 1, 1],
    "berlin": [-0.5, 0.5, 0.5, 1],
}


@pytest.fixture
def kv():
    return keyed_vectors(list(WORDS), np.array(list(WORDS.values()), dtype=np.float32))


@pytest.fixture
def analogy_file(tmp_path):
    path = tmp_path / "analogies.txt"
    path.write_text(
        ": family\nman king woman queen\n"  # correct
        ": capitals\nFrance Paris Italy Rome\n"  # wrong (berlin), mixed case
        "france paris spain madrid\n"  # out of vocabulary: skipped
        "france paris germany berlin\n"
    )  # out of vocabulary: skipped
    return path


def test_analogy_accuracy_and_skipped_share(kv, analogy_file):
    result = evaluate_analogies(kv, analogy_file)
    assert (result.correct, result.evaluated, result.total) == (1, 2, 4)
    assert result.accuracy == 0.5 and result.oov == 0.5


def test_similarity_spearman_and_oov_share(kv, tmp_path):
    path = tmp_path / "pairs.tsv"
    sims = {("king", "queen"): None, ("man", "woman"): None, ("paris", "france"): None}
    for a, b in sims:
        sims[(a, b)] = float(kv.similarity(a, b))
    lines = ["# word1\tword2\tscore"] + [f"{a}\t{b}\t{10 * s:.4f}" for (a, b), s in sims.items()]
    lines.append("KING\tunicorn\t5.0")  # out of vocabulary
    path.write_text("\n".join(lines) + "\n")
    result = evaluate_similarity(kv, path)
    assert result.spearman == pytest.approx(1.0)
    assert result.pairs == 3 and result.oov == pytest.approx(0.25)


def test_all_pairs_out_of_vocabulary_gives_nan_not_a_crash(kv, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("unicorn\tdragon\t5.0\n")
    result = evaluate_similarity(kv, path)
    assert math.isnan(result.spearman) and result.oov == 1.0


def test_evaluate_reports_flat_metrics(kv, analogy_file):
    metrics = evaluate(kv, str(analogy_file), {"wordsim353": "wordsim353.tsv"})
    assert metrics["eval/analogy_accuracy"] == 0.5 and metrics["eval/analogy_oov"] == 0.5
    assert 0.9 < metrics["eval/wordsim353_oov"] <= 1.0  # a 9-word vocabulary misses most pairs


def test_nearest_neighbours_and_unknown_words(kv):
    neighbours, missing = nearest_neighbours(kv, ["King", "unicorn"], topn=2)
    assert list(neighbours) == ["king"] and len(neighbours["king"]) == 2
    assert missing == ["unicorn"]


def test_runs_are_ranked_by_analogies_else_the_first_similarity_benchmark():
    assert main_metric("questions-words.txt", {"wordsim353": "a.tsv"}) == "analogy_accuracy"
    assert main_metric(None, {"simlex999": "b.txt", "wordsim353": "a.tsv"}) == "simlex999_spearman"
    assert main_metric(None, {}) is None
