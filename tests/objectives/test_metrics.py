"""Entity-level scores with seqeval, classification scores and class weights."""

from __future__ import annotations

import random
import warnings
from collections import Counter

import pytest

from lmtrain.errors import UserError
from lmtrain.objectives.metrics import class_weights, classification_scores, entity_scores, per_class_report


def test_entity_scores_per_type_and_overall():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    scores = entity_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["PER/f1"] == 1.0 and scores["LOC/f1"] == 0.0 and scores["LOC/support"] == 1
    # conlleval counts an I- after O as the start of an entity
    assert entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"] == 1.0
    bioes = entity_scores([["B-PER", "E-PER", "S-LOC"]], [["B-PER", "E-PER", "O"]], scheme="bioes")
    assert bioes["recall"] == pytest.approx(0.5)


def test_classification_scores():
    scores = classification_scores([1, 1, 0, 0], [1, 0, 0, 0], n_classes=2, positive=1)
    assert scores["accuracy"] == 0.75 and scores["f1"] == pytest.approx(2 / 3)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_per_class_report_and_confusion_matrix():
    report = per_class_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["neg", "pos", "neutral"])
    assert report["confusion_matrix"] == {
        "labels": ["neg", "pos", "neutral"],
        "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]],
    }  # rows gold, columns predicted
    assert report["per_class"]["pos"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["per_class"]["neutral"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_class_weights_settings():
    counts = Counter({0: 90, 1: 10})
    assert class_weights(counts, 2, "none") is None
    assert class_weights(counts, 2, "auto") == pytest.approx([100 / 180, 100 / 20])
    assert class_weights(counts, 2, [1, 3]) == [1.0, 3.0]
    with pytest.raises(UserError, match="has 3 values; give 2"):
        class_weights(counts, 2, [1, 2, 3])


def test_entity_scores_without_any_entity_are_zeros_without_a_numpy_warning():
    """A batch (or a model) with no entity on either side scores 0 quietly: no "Mean of empty slice" on stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = entity_scores([["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert (scores["precision"], scores["recall"], scores["f1"], scores["entities"]) == (0.0, 0.0, 0.0, 0.0)


def _seqeval_report(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """What seqeval's own classification_report gives, in entity_scores' keys."""
    from seqeval.metrics import classification_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    scores = {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"]}
    scores["entities"] = micro["support"]
    columns = {"precision": "precision", "recall": "recall", "f1": "f1-score", "support": "support"}
    for name, row in report.items():
        if not name.endswith(" avg"):
            scores.update({f"{name}/{key}": row[column] for key, column in columns.items()})
    return {key: float(value) for key, value in scores.items()}


def test_entity_scores_read_each_side_once_and_equal_seqeval_s_report():
    """Random tag sequences, ill-formed ones (I- after O, a type change inside) and empty sentences included."""
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC", "I-X", "B-X"]
    rng = random.Random(0)
    for _ in range(500):
        gold = [[rng.choice(tags) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 6))]
        predicted = [[rng.choice(tags) for _ in sentence] for sentence in gold]
        assert entity_scores(gold, predicted) == _seqeval_report(gold, predicted), (gold, predicted)


def test_classification_scores_are_scikit_learns_without_importing_it():
    import math
    import random
    import subprocess
    import sys

    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    rng = random.Random(0)
    for _ in range(500):
        k, n = rng.randint(2, 6), rng.randint(1, 40)
        gold = [rng.randrange(k) for _ in range(n)]
        predicted = [rng.randrange(k - 1 if rng.random() < 0.2 else k) for _ in range(n)]  # a class never predicted
        ours = classification_scores(gold, predicted, k, positive=1)
        present = sorted(set(gold) | set(predicted))
        assert math.isclose(
            ours["macro_f1"], f1_score(gold, predicted, labels=present, average="macro", zero_division=0)
        )
        assert math.isclose(ours["f1"], f1_score(gold, predicted, labels=[1], average="macro", zero_division=0))
        report = per_class_report(gold, predicted, [f"c{i}" for i in range(k)])
        theirs = precision_recall_fscore_support(gold, predicted, labels=list(range(k)), zero_division=0)
        for i in range(k):
            row = report["per_class"][f"c{i}"]
            assert [row["precision"], row["recall"], row["f1"], row["support"]] == pytest.approx([t[i] for t in theirs])
        assert report["confusion_matrix"]["matrix"] == confusion_matrix(gold, predicted, labels=list(range(k))).tolist()
    code = (
        "import sys; from lmtrain.objectives.metrics import classification_scores, per_class_report; "
        "classification_scores([0, 1], [1, 1], 2, 1); per_class_report([0, 1], [1, 1], ['a', 'b']); "
        "print('sklearn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]  # its import costs a classification run 1.8 s
