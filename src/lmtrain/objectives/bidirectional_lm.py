"""Bidirectional language modelling (ELMo): next token left to right, previous token right to left."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, cast

import torch
from torch import nn

from lmtrain.models.elmo import BiLMOutput
from lmtrain.objectives.base import Objective, ObjectiveOutput, perplexity, ratio
from lmtrain.objectives.linear_cross_entropy import linear_cross_entropy


class _BidirectionalModel(Protocol):
    """What a model with ``Capability.BIDIRECTIONAL_LM`` offers this loss: both directions' states, one softmax."""

    heads: Mapping[str, nn.Linear]

    def backbone(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BiLMOutput:
        """(B, T) token ids -> the token vectors and each direction's layer states."""


class BidirectionalLM(Objective):
    """Sum of the forward and backward LMs' cross-entropies, each normalised by its own targets.

    The forward top layer at t predicts token t+1, the backward top layer at t predicts token
    t-1; both go through the one shared softmax ``heads["lm"]``. Padding is never predicted.
    """

    head_names = ("lm",)
    main_metric = "ppl"

    @staticmethod
    def _target_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T-1): True where both t and t+1 are real tokens (a target for each direction)."""
        mask = batch["attention_mask"]
        return mask[:, 1:] & mask[:, :-1]

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward targets (``fwd``), backward targets (``bwd``) and real tokens (``tokens``)."""
        n = self._target_mask(batch).sum()
        return {"fwd": n, "bwd": n.clone(), "tokens": batch["attention_mask"].sum()}

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Both directions' losses of ``batch``; see :class:`lmtrain.objectives.base.Objective`."""
        ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        # The model has BIDIRECTIONAL_LM (checked before training). A cast, not isinstance: no check in the
        # compiled step.
        bilm = cast(_BidirectionalModel, model)
        states = bilm.backbone(ids, attention_mask)
        mask = self._target_mask(batch)  # (B, T-1)
        head = bilm.heads["lm"]
        # head is a plain nn.Linear: both directions fuse its projection into the cross-entropy
        fwd_sum, fwd_correct = linear_cross_entropy(  # from t, predict t+1
            states.forward[-1][:, :-1][mask], head.weight, head.bias, ids[:, 1:][mask]
        )
        bwd_sum, bwd_correct = linear_cross_entropy(  # from t+1, predict t
            states.backward[-1][:, 1:][mask], head.weight, head.bias, ids[:, :-1][mask]
        )
        loss = fwd_sum / norm["fwd"].clamp(min=1) + bwd_sum / norm["bwd"].clamp(min=1)
        sums = {
            "fwd_loss_sum": fwd_sum.detach(),
            "bwd_loss_sum": bwd_sum.detach(),
            "lm_count": mask.sum(),
            "fwd_correct": fwd_correct,
            "bwd_correct": bwd_correct,
        }
        return ObjectiveOutput(loss, sums)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """Per-direction ``fwd_loss`` / ``bwd_loss`` / ``*_ppl`` / ``*_acc``; ``loss`` is their mean and
        ``ppl`` = exp(mean loss), the geometric mean of the two perplexities."""
        fwd, bwd = ratio(sums, "fwd_loss_sum", "lm_count"), ratio(sums, "bwd_loss_sum", "lm_count")
        loss = (fwd + bwd) / 2 if math.isfinite(fwd) and math.isfinite(bwd) else math.nan
        return {
            "loss": loss,
            "ppl": perplexity(loss),
            "fwd_loss": fwd,
            "bwd_loss": bwd,
            "fwd_ppl": perplexity(fwd),
            "bwd_ppl": perplexity(bwd),
            "fwd_acc": ratio(sums, "fwd_correct", "lm_count"),
            "bwd_acc": ratio(sums, "bwd_correct", "lm_count"),
        }
