"""Task metrics: entity-level precision / recall / F1 (seqeval) and classification scores."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


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

    Args:
        gold, predicted: one tag sequence per sentence, of equal lengths.
        scheme: bio | iob1 | bioes (see :func:`seqeval_settings`).
    Returns:
        ``precision``, ``recall``, ``f1``, ``entities`` (gold count) and for each entity type
        ``<TYPE>/precision``, ``<TYPE>/recall``, ``<TYPE>/f1``, ``<TYPE>/support``.
    """
    from seqeval.metrics import classification_report

    report = classification_report(gold, predicted, output_dict=True, zero_division=0, **seqeval_settings(scheme))
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    scores = {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
              "f1": float(micro["f1-score"]), "entities": float(micro["support"])}
    for name, row in report.items():
        if name.endswith(" avg"):
            continue
        scores.update({f"{name}/precision": float(row["precision"]), f"{name}/recall": float(row["recall"]),
                       f"{name}/f1": float(row["f1-score"]), f"{name}/support": float(row["support"])})
    return scores


def classification_scores(gold: list[int], predicted: list[int], n_classes: int,
                          positive: int | None = None) -> dict[str, float]:
    """``accuracy``, ``macro_f1`` over the classes present in gold or predictions, and ``f1`` of ``positive``.

    Args:
        gold, predicted: class ids.
        n_classes: number of classes.
        positive: class whose F1 is reported as ``f1`` (binary tasks), or None.
    """
    gold_a, pred_a = np.asarray(gold), np.asarray(predicted)
    if not len(gold_a):
        return {"accuracy": math.nan, "macro_f1": math.nan}

    def f1(c: int) -> float:
        tp = float(((pred_a == c) & (gold_a == c)).sum())
        denominator = float((pred_a == c).sum() + (gold_a == c).sum())
        return 2 * tp / denominator if denominator else 0.0

    present = [c for c in range(n_classes) if (gold_a == c).any() or (pred_a == c).any()]
    scores = {"accuracy": float((gold_a == pred_a).mean()), "macro_f1": float(np.mean([f1(c) for c in present]))}
    if positive is not None:
        scores["f1"] = f1(positive)
    return scores


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
        raise UserError(f"finetune.class_weights={setting} is not supported; use none, auto or a list of "
                        f"{n_classes} numbers in label order.")
    weights = [float(w) for w in setting]
    if len(weights) != n_classes or any(w < 0 for w in weights):
        raise UserError(f"finetune.class_weights has {len(weights)} values; give {n_classes} non-negative numbers, "
                        "one per label in the order of the run's label list (summary.json: labels).")
    return weights
