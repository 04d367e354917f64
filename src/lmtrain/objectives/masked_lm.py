"""Masked LM (RoBERTa), optionally with next-sentence prediction (BERT)."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.models.heads import first_positions
from lmtrain.models.protocol import ProjectionHead
from lmtrain.objectives.base import (
    HeadedFeatureModel,
    Objective,
    ObjectiveOutput,
    labelled_positions,
    perplexity,
    ratio,
    states_at,
)
from lmtrain.objectives.linear_cross_entropy import linear_cross_entropy


class MaskedLM(Objective):
    """Cross-entropy on the masked positions only, plus NSP on the pooled [CLS] if asked.

    The vocabulary projection runs on the ~15% selected positions, not on every token.

    Args:
        next_sentence: add BERT's next-sentence prediction loss (needs ``next_sentence_label``).
    """

    main_metric = "mlm_acc"
    higher_is_better = True

    def __init__(self, next_sentence: bool):
        self.next_sentence = next_sentence
        self.head_names = ("mlm", "nsp") if next_sentence else ("mlm",)

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Masked tokens (``mlm``), sequences (``nsp``) and real tokens (``tokens``)."""
        counts = {"mlm": (batch["labels"] != IGNORE_INDEX).sum(), "tokens": batch["attention_mask"].sum()}
        if self.next_sentence:
            counts["nsp"] = torch.tensor(batch["input_ids"].shape[0], device=batch["input_ids"].device)
        return counts

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """MLM (+ NSP) loss of ``batch``; see :class:`lmtrain.objectives.base.Objective`."""
        selected, targets = labelled_positions(batch)  # (B, T), (N,)
        if self.next_sentence:
            first = first_positions(selected)  # what the pooled ``nsp`` head reads: [CLS]
            wanted = selected | first
            read = states_at(model, batch, wanted)  # (M, D)
            # gathers, not a scatter into (B, T, D): index_put's backward fails under torch.compile here
            states, pooled = read[selected[wanted]], read[first[wanted]]  # (N, D), (B, D)
        else:
            states = states_at(model, batch, selected)  # (N, D)
        # Capability.MASKED_LM (checked before training) promises the heads and an ``mlm`` head with a fusable
        # projection; casts, not isinstance: no check in the compiled step
        heads = cast(HeadedFeatureModel, model).heads
        mlm = cast(ProjectionHead, heads["mlm"])
        mlm_sum, mlm_correct = linear_cross_entropy(mlm.transform(states), mlm.weight, mlm.bias, targets)
        loss = mlm_sum / norm["mlm"].clamp(min=1)
        sums = {"mlm_loss_sum": mlm_sum.detach(), "mlm_correct": mlm_correct, "mlm_count": selected.sum()}
        if self.next_sentence:
            nsp_logits = heads["nsp"](pooled[:, None]).float()  # (B, 2): the head pools position 0 of (B, 1, D)
            nsp_labels = batch["next_sentence_label"]
            nsp_sum = F.cross_entropy(nsp_logits, nsp_labels, reduction="sum")
            loss = loss + nsp_sum / norm["nsp"].clamp(min=1)
            sums.update(
                nsp_loss_sum=nsp_sum.detach(),
                nsp_correct=(nsp_logits.argmax(-1) == nsp_labels).sum(),
                nsp_count=torch.tensor(len(nsp_labels), device=nsp_labels.device),
            )
        return ObjectiveOutput(loss, sums)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``mlm_loss``, ``mlm_acc``, ``mlm_ppl`` (+ ``nsp_loss``, ``nsp_acc``) and total ``loss``."""
        metrics = {
            "mlm_loss": ratio(sums, "mlm_loss_sum", "mlm_count"),
            "mlm_acc": ratio(sums, "mlm_correct", "mlm_count"),
        }
        metrics["mlm_ppl"] = perplexity(metrics["mlm_loss"])
        metrics["loss"] = metrics["mlm_loss"]
        if self.next_sentence:
            metrics["nsp_loss"] = ratio(sums, "nsp_loss_sum", "nsp_count")
            metrics["nsp_acc"] = ratio(sums, "nsp_correct", "nsp_count")
            metrics["loss"] += metrics["nsp_loss"]
        return metrics
