"""Sequence (pair) classification: cross-entropy on the pooled first token; accuracy and F1."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.objectives.base import HeadedFeatureModel, Objective, ObjectiveOutput, ratio, states_for_head
from lmtrain.objectives.metrics import classification_scores, per_class_report


class SequenceClassification(Objective):
    """One label per sequence from the ``classifier`` head (dropout -> dense -> tanh -> dropout -> output).

    Args:
        labels: the name of each class id.
        positive: id of the class whose F1 is reported for binary tasks (None = no such metric).
        weights: per-class loss weights, or None (weighted mean over the accumulation window).
    """

    head_names = ("classifier",)
    main_metric = "accuracy"
    higher_is_better = True

    def __init__(self, labels: list[str], positive: int | None = None, weights: list[float] | None = None):
        self.labels = list(labels)
        self.positive = positive
        self.weights = torch.tensor(weights, dtype=torch.float32) if weights is not None else None

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sequences (``cls``; their summed weights with class weights) and real tokens."""
        labels = batch["label"]
        count = (
            self.weights.to(labels.device)[labels].sum()
            if self.weights is not None
            else torch.tensor(len(labels), device=labels.device)
        )
        return {"cls": count, "tokens": batch["attention_mask"].sum()}

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Classification loss of ``batch``; predicted and gold ids when the model is in eval mode."""
        # the task's capability (checked before training) promises the backbone and its head; a cast, not
        # isinstance: no check in the compiled step
        head = cast(HeadedFeatureModel, model).heads["classifier"]
        hidden = states_for_head(model, batch, head)  # (B, T, D); a pooled head's first positions only
        logits = head(hidden, batch["attention_mask"]).float()  # (B, C)
        labels = batch["label"]
        losses = F.cross_entropy(logits, labels, reduction="none")  # (B,)
        weighted = losses.sum() if self.weights is None else (losses * self.weights.to(labels.device)[labels]).sum()
        predicted = logits.argmax(-1)
        sums = {
            "cls_loss_sum": losses.sum().detach(),
            "cls_correct": (predicted == labels).sum(),
            "cls_count": torch.tensor(len(labels), device=labels.device),
        }
        predictions = None if model.training else {"pred": predicted.tolist(), "gold": labels.tolist()}
        return ObjectiveOutput(weighted / norm["cls"].clamp(min=1e-9), sums, predictions)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``loss``, ``accuracy``; with predictions ``macro_f1`` and (binary) ``f1`` of the positive class."""
        metrics = {
            "loss": ratio(sums, "cls_loss_sum", "cls_count"),
            "accuracy": ratio(sums, "cls_correct", "cls_count"),
        }
        if predictions:
            gold = [g for batch in predictions for g in batch["gold"]]
            predicted = [p for batch in predictions for p in batch["pred"]]
            metrics.update(classification_scores(gold, predicted, len(self.labels), self.positive))
        return metrics

    def report(self, predictions: list) -> dict:
        """Per-class precision / recall / F1 and the confusion matrix of evaluation ``predictions``."""
        gold = [g for batch in predictions for g in batch["gold"]]
        predicted = [p for batch in predictions for p in batch["pred"]]
        return per_class_report(gold, predicted, self.labels)
