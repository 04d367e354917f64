"""Reference points for held-out metrics: what a model that learned nothing useful would score."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Subset

from lmtrain.data.masking import IGNORE_INDEX


class ExampleSet(Protocol):
    """A sized data set of examples (dicts with a ``labels`` array), such as a ``Subset`` of one."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def _labels(dataset: ExampleSet) -> np.ndarray:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    labels = _stored_labels(dataset)
    if labels is None:
        parts = [np.asarray(dataset[i]["labels"]) for i in range(len(dataset))]
        labels = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return labels[labels != IGNORE_INDEX]


def _stored_labels(dataset: ExampleSet) -> np.ndarray | None:
    """Every example's labels in order, read in one pass where the set (or the set a ``Subset`` picks from)
    stores them as they are (``sequence_values``); None where only reading each example gives them."""
    base: Any
    if isinstance(dataset, Subset):
        base, indices = dataset.dataset, dataset.indices
    else:
        base, indices = dataset, range(len(dataset))
    read = getattr(base, "sequence_values", None)
    return None if read is None else read("labels", indices)


def _most_frequent(labels: np.ndarray) -> int:
    """The most frequent value; of values as frequent, the one seen first (as ``Counter.most_common`` picks)."""
    low = int(labels.min())
    counts = np.bincount(labels - low)
    tied = np.flatnonzero(counts == counts.max()) + low
    return int(labels[np.flatnonzero(np.isin(labels, tied))[0]])


def majority_token_accuracy(train_set: ExampleSet, eval_set: ExampleSet) -> float:
    """Masked-token accuracy of always predicting the most frequent masked token of training."""
    train_labels = _labels(train_set)
    eval_labels = _labels(eval_set)
    if not len(train_labels) or not len(eval_labels):
        return math.nan
    return float((eval_labels == _most_frequent(train_labels)).mean())


def unigram_perplexity(train_ids: list[np.ndarray], eval_ids: list[np.ndarray], vocab_size: int) -> float:
    """Perplexity on ``eval_ids`` of an add-one-smoothed unigram model of ``train_ids``."""
    counts = np.bincount(np.concatenate(train_ids), minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    tokens = np.concatenate(eval_ids)
    return float(math.exp(-log_probs[tokens].mean()))
