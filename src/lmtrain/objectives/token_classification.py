"""Token classification (NER): cross-entropy on the first sub-word of every word, entity F1 with seqeval."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.objectives.base import Objective, ObjectiveOutput, labelled_logits, ratio


class TokenClassification(Objective):
    """A tag per word from the ``tagger`` head; evaluation merges the windows of each sentence.

    Args:
        labels: the tag of each label id.
        scheme: tagging scheme for the entity metric (bio | iob1 | bioes).
        weights: per-label loss weights, or None. With weights, the loss of the accumulation window
            is divided by the summed weights of its targets (the weighted mean).
    """

    head_names = ("tagger",)
    main_metric = "f1"
    higher_is_better = True

    def __init__(self, labels: list[str], scheme: str = "bio", weights: list[float] | None = None):
        self.labels = list(labels)
        self.scheme = scheme
        self.weights = torch.tensor(weights, dtype=torch.float32) if weights is not None else None

    def _weight_of(self, targets: torch.Tensor) -> torch.Tensor:
        return self.weights.to(targets.device)[targets]

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Labelled words (``tags``; their summed weights with class weights) and real tokens."""
        labels = batch["labels"]
        selected = labels != IGNORE_INDEX
        count = self._weight_of(labels[selected]).sum() if self.weights is not None else selected.sum()
        return {"tags": count, "tokens": batch["attention_mask"].sum()}

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor],
                 norm: dict[str, torch.Tensor]) -> ObjectiveOutput:
        """Tagging loss of ``batch``; word-level predictions when the model is in eval mode."""
        _, selected, targets, logits = labelled_logits(model, batch, "tagger")  # logits (N, C)
        losses = F.cross_entropy(logits, targets, reduction="none")  # (N,)
        loss_sum = losses.sum()
        weighted = loss_sum if self.weights is None else (losses * self._weight_of(targets)).sum()
        predicted = logits.argmax(-1)
        sums = {"tag_loss_sum": loss_sum.detach(), "tag_correct": (predicted == targets).sum(),
                "tag_count": selected.sum()}
        predictions = None
        if not model.training:
            per_row = selected.sum(dim=1).tolist()
            predictions = {"sentence": batch["sentence"].tolist(), "window": batch["window"].tolist(),
                           "pred": [p.tolist() for p in predicted.split(per_row)],
                           "gold": [g.tolist() for g in targets.split(per_row)]}
        return ObjectiveOutput(weighted / norm["tags"].clamp(min=1e-9), sums, predictions)

    def word_sequences(self, predictions: list[dict]) -> tuple[list[list[str]], list[list[str]]]:
        """(gold, predicted) tag sequences per sentence, windows joined in order."""
        parts: dict[int, list[tuple[int, list[int], list[int]]]] = {}
        for batch in predictions:
            for s, w, p, g in zip(batch["sentence"], batch["window"], batch["pred"], batch["gold"]):
                parts.setdefault(s, []).append((w, g, p))
        gold, predicted = [], []
        for s in sorted(parts):
            windows = sorted(parts[s])
            gold.append([self.labels[i] for _, g, _ in windows for i in g])
            predicted.append([self.labels[i] for _, _, p in windows for i in p])
        return gold, predicted

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``loss``, word ``acc``; with predictions entity ``precision``, ``recall``, ``f1`` (+ per type)."""
        metrics = {"loss": ratio(sums, "tag_loss_sum", "tag_count"), "acc": ratio(sums, "tag_correct", "tag_count")}
        if predictions:
            from lmtrain.tasks.metrics import entity_scores

            metrics.update(entity_scores(*self.word_sequences(predictions), scheme=self.scheme))
        return metrics
