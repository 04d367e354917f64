"""Entity spans for `lmtrain predict` and the NER evaluation: the same as seqeval's ``get_entities`` (conlleval's
rules), without importing scikit-learn."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings

from lmtrain.objectives.entity_spans import entity_spans

TAGS = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-MISC-X", "I-MISC-X", "B", "I"]


def test_the_spans_are_seqevals_on_well_and_ill_formed_sequences():
    from seqeval.metrics.sequence_labeling import get_entities

    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert entity_spans(["I-PER", "I-LOC", "E-LOC", "S-PER", "O"]) == [("PER", 0, 0), ("LOC", 1, 2), ("PER", 3, 3)]
    assert entity_spans([]) == []
    rng = random.Random(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns about the bare B and I
        for _ in range(5000):
            tags = [rng.choice(TAGS) for _ in range(rng.randint(0, 12))]
            assert entity_spans(tags) == get_entities(tags), tags


def test_an_ner_task_and_its_entity_scores_import_no_scikit_learn():
    code = (
        "import sys, lmtrain.tasks.ner\n"
        "from lmtrain.objectives.metrics import entity_scores\n"
        "scores = entity_scores([['B-PER', 'I-PER', 'O']], [['B-PER', 'O', 'O']])\n"
        "print(scores['PER/support'], scores['f1'], 'sklearn' in sys.modules or 'seqeval' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "1.0 0.0 False", done.stderr[-2000:]
