"""Token classification (NER): a loss on the first sub-word of every word, entity F1 with seqeval.

Without a CRF the loss is each word's cross-entropy; with one (``heads["tagger"].crf``) it is the
negative log-likelihood of each window's word sequence, and predictions are Viterbi's best sequence.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.models.crf import LinearChainCRF
from lmtrain.objectives.base import HeadedFeatureModel, Objective, ObjectiveOutput, ratio
from lmtrain.objectives.metrics import entity_scores


def gather_words(values: torch.Tensor, selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled positions of each row moved to its front, in order: the sequence of words.

    Args:
        values: (B, T, ...) per-token values (scores, labels).
        selected: (B, T) True at each word's first sub-word.
    Returns:
        ((B, W, ...) values, (B, W) mask of real words), W the most words in a row.
    """
    counts = selected.sum(1)  # (B,)
    width = int(counts.max()) if counts.numel() else 0
    # a stable sort of "not selected" puts the selected positions first, in their original order
    order = torch.sort((~selected).to(torch.int8), dim=1, stable=True).indices[:, :width]  # (B, W)
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand(*order.shape, *values.shape[2:])
    mask = torch.arange(width, device=selected.device).unsqueeze(0) < counts.unsqueeze(1)  # (B, W)
    return values.gather(1, index), mask


def tag_scores(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ``tagger`` head's float32 scores of every token, (B, T, C)."""
    # the task's capability (checked before training) promises the backbone and its head; a cast, not
    # isinstance: no check in the compiled step
    tagger = cast(HeadedFeatureModel, model)
    hidden = tagger.backbone(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    return tagger.heads["tagger"](hidden, batch["attention_mask"]).float()


def best_tags(head: nn.Module, scores: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Predicted label ids at the ``selected`` positions, (N,) in row-major order.

    With a CRF the best word sequence of each row (Viterbi), else each word's highest score.
    """
    crf: LinearChainCRF | None = getattr(head, "crf", None)  # a task's own head may have no ``crf``
    if crf is None:
        return scores[selected].argmax(-1)
    words, mask = gather_words(scores, selected)  # (B, W, C), (B, W)
    return crf.decode(words, mask)[mask]


def _weight_of(weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The class weight of each target id."""
    return weights.to(targets.device)[targets]


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

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Labelled words (``tags``; their summed weights with class weights) and real tokens."""
        labels = batch["labels"]
        selected = labels != IGNORE_INDEX
        count = _weight_of(self.weights, labels[selected]).sum() if self.weights is not None else selected.sum()
        return {"tags": count, "tokens": batch["attention_mask"].sum()}

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Tagging loss of ``batch``; word-level predictions when the model is in eval mode."""
        scores = tag_scores(model, batch)  # (B, T, C)
        labels = batch["labels"]
        selected = labels != IGNORE_INDEX  # (B, T)
        targets = labels[selected]  # (N,)
        head = cast(HeadedFeatureModel, model).heads["tagger"]  # cast: as in tag_scores
        crf: LinearChainCRF | None = getattr(head, "crf", None)
        if crf is not None:
            words, mask = gather_words(scores, selected)  # (B, W, C), (B, W)
            tags, _ = gather_words(labels, selected)  # (B, W)
            loss_sum = -crf.log_likelihood(words, tags.clamp(min=0), mask).sum()
            weighted = loss_sum  # class weights do not apply to a sequence's likelihood (refused earlier)
        else:
            losses = F.cross_entropy(scores[selected], targets, reduction="none")  # (N,)
            loss_sum = losses.sum()
            weighted = loss_sum if self.weights is None else (losses * _weight_of(self.weights, targets)).sum()
        predicted = best_tags(head, scores.detach(), selected)
        sums = {
            "tag_loss_sum": loss_sum.detach(),
            "tag_correct": (predicted == targets).sum(),
            "tag_count": selected.sum(),
        }
        predictions = None
        if not model.training:
            per_row = selected.sum(dim=1).tolist()
            predictions = {
                "sentence": batch["sentence"].tolist(),
                "window": batch["window"].tolist(),
                "pred": [p.tolist() for p in predicted.split(per_row)],
                "gold": [g.tolist() for g in targets.split(per_row)],
            }
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
            metrics.update(entity_scores(*self.word_sequences(predictions), scheme=self.scheme))
        return metrics
