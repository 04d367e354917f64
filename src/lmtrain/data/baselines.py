"""Reference points for held-out metrics: what a model that learned nothing useful would score."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Protocol

import numpy as np

from lmtrain.data.masking import IGNORE_INDEX


class ExampleSet(Protocol):
    """A sized data set of examples (dicts with a ``labels`` array), such as a ``Subset`` of one."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def _labels(dataset: ExampleSet) -> np.ndarray:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    parts = [np.asarray(dataset[i]["labels"]) for i in range(len(dataset))]
    labels = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return labels[labels != IGNORE_INDEX]


def majority_token_accuracy(train_set: ExampleSet, eval_set: ExampleSet) -> float:
    """Masked-token accuracy of always predicting the most frequent masked token of training."""
    train_labels = _labels(train_set)
    eval_labels = _labels(eval_set)
    if not len(train_labels) or not len(eval_labels):
        return math.nan
    majority = Counter(train_labels.tolist()).most_common(1)[0][0]
    return float((eval_labels == majority).mean())


def unigram_perplexity(train_ids: list[np.ndarray], eval_ids: list[np.ndarray], vocab_size: int) -> float:
    """Perplexity on ``eval_ids`` of an add-one-smoothed unigram model of ``train_ids``."""
    counts = np.bincount(np.concatenate(train_ids), minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    tokens = np.concatenate(eval_ids)
    return float(math.exp(-log_probs[tokens].mean()))
