"""Metrics of the fine-tuning objectives: entity-level precision / recall / F1 (seqeval's), classification scores
and per-class reports (scikit-learn's), each equal to its library's (tested) without importing either (strict
BIOES entity scoring aside, which runs seqeval's report)."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import numpy as np

from lmtrain.objectives.entity_spans import entity_spans


def seqeval_settings(scheme: str) -> dict:
    """seqeval's mode / scheme for a tagging scheme.

    BIO (and IOB1, converted to BIO on reading) use seqeval's default mode, which counts entities
    the way the CoNLL shared task's conlleval script does; BIOES uses strict IOBES matching.
    """
    if scheme == "bioes":
        from seqeval.scheme import IOBES

        return {"mode": "strict", "scheme": IOBES}
    return {}


def entity_scores(gold: list[list[str]], predicted: list[list[str]], scheme: str = "bio") -> dict[str, float]:
    """Micro precision / recall / F1 over entities, and per type ``<TYPE>/precision`` etc.

    The scores are seqeval's ``classification_report``'s. In its default mode (conlleval's reading) lmtrain reads
    each side's entities once with :func:`entity_spans` (seqeval's ``get_entities`` rules) and divides as seqeval
    does (:func:`_entity_counts`; equal to the report, tested): seqeval's report reads them four times (0.64 s
    for CoNLL-2003's 3,250 held-out sentences, against 0.1 s) and importing seqeval imports scikit-learn (about
    2 s, at every NER run). Strict BIOES matching keeps seqeval's report.

    Args:
        gold, predicted: one tag sequence per sentence, of equal lengths.
        scheme: bio | iob1 | bioes (see :func:`seqeval_settings`).
    Returns:
        ``precision``, ``recall``, ``f1``, ``entities`` (gold count) and for each entity type
        ``<TYPE>/precision``, ``<TYPE>/recall``, ``<TYPE>/f1``, ``<TYPE>/support``.
    """
    if scheme != "bioes":
        return _entity_counts(gold, predicted)
    from seqeval.metrics import classification_report

    with warnings.catch_warnings():  # no entity on either side: seqeval averages empty arrays (its macro row)
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, predicted, output_dict=True, zero_division=0, **seqeval_settings(scheme))
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    scores = {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "entities": float(micro["support"]),
    }
    for name, row in report.items():
        if name.endswith(" avg"):
            continue
        scores.update(
            {
                f"{name}/precision": float(row["precision"]),
                f"{name}/recall": float(row["recall"]),
                f"{name}/f1": float(row["f1-score"]),
                f"{name}/support": float(row["support"]),
            }
        )
    return scores


def _divided(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top / bottom``, 0 where ``bottom`` is 0 (seqeval's division with ``zero_division=0``)."""
    bottom = bottom.copy()
    empty = bottom == 0
    bottom[empty] = 1
    out = top / bottom
    out[empty] = 0.0
    return out


def _precision_recall_f1(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 of entity counts, in seqeval's operations (the same floats)."""
    precision, recall = _divided(tp, predicted), _divided(tp, true)
    denominator = 1.0 * precision + recall
    denominator[denominator == 0.0] = 1
    return precision, recall, (1 + 1.0) * precision * recall / denominator


def _entity_counts(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """:func:`entity_scores` in seqeval's default mode (conlleval's reading), each side's entities read once."""
    true: dict[str, set] = {}
    found: dict[str, set] = {}
    for sequences, entities in ((gold, true), (predicted, found)):
        for sentence, tags in enumerate(sequences):
            for kind, start, end in entity_spans(tags):
                entities.setdefault(kind, set()).add((sentence, start, end))
    names = sorted(set(true) | set(found))
    tp = np.array([len(true.get(n, set()) & found.get(n, set())) for n in names], dtype=np.int64)
    predicted_n = np.array([len(found.get(n, set())) for n in names], dtype=np.int64)
    true_n = np.array([len(true.get(n, set())) for n in names], dtype=np.int64)
    scores = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "entities": 0.0}
    if names:
        micro = _precision_recall_f1(tp.sum(keepdims=True), predicted_n.sum(keepdims=True), true_n.sum(keepdims=True))
        scores = {key: float(value[0]) for key, value in zip(("precision", "recall", "f1"), micro)}
        scores["entities"] = float(true_n.sum())
    for i, (precision, recall, f1) in enumerate(zip(*_precision_recall_f1(tp, predicted_n, true_n))):
        name = names[i]
        scores.update(
            {
                f"{name}/precision": float(precision),
                f"{name}/recall": float(recall),
                f"{name}/f1": float(f1),
                f"{name}/support": float(true_n[i]),
            }
        )
    return scores


def _confusion(gold: list[int], predicted: list[int], n_classes: int) -> np.ndarray:
    """Counts of (gold, predicted) class ids in ``range(n_classes)``: a row per gold class, a column per prediction."""
    g, p = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    inside = (g >= 0) & (g < n_classes) & (p >= 0) & (p < n_classes)
    return np.bincount(g[inside] * n_classes + p[inside], minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _per_label(gold: list[int], predicted: list[int], labels: list[int]) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support of each of ``labels``, 0 where a ratio has nothing to divide (as
    scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)``)."""
    g, p = np.asarray(gold), np.asarray(predicted)
    each = np.asarray(labels).reshape(-1, 1)  # (L, 1) against (N,)
    tp = np.sum((g == each) & (p == each), axis=1).astype(np.float64)
    fp = np.sum((p == each) & (g != each), axis=1).astype(np.float64)
    fn = np.sum((g == each) & (p != each), axis=1).astype(np.float64)

    def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)

    return ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn), (tp + fn).astype(np.int64)


def classification_scores(
    gold: list[int], predicted: list[int], n_classes: int, positive: int | None = None
) -> dict[str, float]:
    """``accuracy``, ``macro_f1`` over the classes present in gold or predictions, and ``f1`` of ``positive``.

    The same values as scikit-learn's ``accuracy_score`` and ``f1_score(..., zero_division=0)`` (tested), without
    importing it (1.8 s on 2 cores, paid by every classification run).

    Args:
        gold, predicted: class ids.
        n_classes: number of classes.
        positive: class whose F1 is reported as ``f1`` (binary tasks), or None.
    """
    if not len(gold):
        return {"accuracy": math.nan, "macro_f1": math.nan}
    present = sorted(set(gold) | set(predicted))
    scores = {
        "accuracy": float(np.mean(np.asarray(gold) == np.asarray(predicted))),
        "macro_f1": float(np.mean(_per_label(gold, predicted, present)[2])),
    }
    if positive is not None:
        scores["f1"] = float(_per_label(gold, predicted, [positive])[2][0])
    return scores


def per_class_report(gold: list[int], predicted: list[int], labels: list[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support of every class, and the confusion matrix.

    Args:
        gold, predicted: class ids (indices into ``labels``).
        labels: the class names, in id order.
    Returns:
        ``per_class``: ``{label: {"precision", "recall", "f1", "support"}}``; ``confusion_matrix``:
        ``{"labels": labels, "matrix": rows of counts}``, a row per gold class, a column per predicted one.
    """
    ids = list(range(len(labels)))
    precision, recall, f1, support = _per_label(gold, predicted, ids)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    matrix = _confusion(gold, predicted, len(labels))
    return {"per_class": per_class, "confusion_matrix": {"labels": list(labels), "matrix": matrix.tolist()}}


def class_weights(counts: Counter, n_classes: int, setting) -> list[float] | None:
    """Per-class loss weights from ``finetune.class_weights``: none, auto or an explicit list.

    ``auto`` gives each class ``total / (n_classes * count)`` (inverse frequency, mean weight 1 over
    examples); classes absent from training get weight 1.
    """
    from lmtrain.errors import UserError

    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        return None
    if isinstance(setting, str) and setting.lower() == "auto":
        total = sum(counts.values())
        return [total / (n_classes * counts[c]) if counts.get(c) else 1.0 for c in range(n_classes)]
    if isinstance(setting, str):
        raise UserError(
            f"finetune.class_weights={setting} is not supported; use none, auto or a list of "
            f"{n_classes} numbers in label order."
        )
    weights = [float(w) for w in setting]
    if len(weights) != n_classes or any(w < 0 for w in weights):
        raise UserError(
            f"finetune.class_weights has {len(weights)} values; give {n_classes} non-negative numbers, "
            "one per label in the order of the run's label list (summary.json: labels)."
        )
    return weights
