"""Causal language modelling (GPT): predict every next token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, cast

import torch
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.models.protocol import ProjectionHead
from lmtrain.objectives.base import Objective, ObjectiveOutput, perplexity, ratio
from lmtrain.objectives.linear_cross_entropy import linear_cross_entropy


class _CausalModel(Protocol):
    """What a model with ``Capability.CAUSAL_LM`` offers this loss: causal states and the ``lm`` head."""

    heads: Mapping[str, ProjectionHead]

    def backbone(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, D) states, position t having seen tokens <= t only."""


class CausalLM(Objective):
    """Next-token cross-entropy over all real positions; padding never predicted or attended."""

    head_names = ("lm",)
    main_metric = "ppl"

    @staticmethod
    def _target_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T-1): True where position t+1 is a real token to predict from t."""
        mask = batch["attention_mask"][:, 1:]
        if "loss_mask" in batch:  # e.g. fine-tuning on completions only
            mask = mask & batch["loss_mask"][:, 1:].bool()
        return mask

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Predicted tokens (``lm``) and real tokens (``tokens``)."""
        return {"lm": self._target_mask(batch).sum(), "tokens": batch["attention_mask"].sum()}

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Next-token loss of ``batch``; see :class:`lmtrain.objectives.base.Objective`."""
        # Batches are right-padded: padding comes after every real token, so causal attention
        # alone keeps it out of sight of real positions. No padding mask means SDPA's fused causal
        # kernel for every batch and no host sync to find out whether a batch is padded.
        # The model has CAUSAL_LM (checked before training). A cast, not isinstance: no check in the compiled step.
        lm = cast(_CausalModel, model)
        hidden = lm.backbone(batch["input_ids"])[:, :-1]  # (B, T-1, D): position t predicts t+1
        target_mask = self._target_mask(batch)  # (B, T-1)
        targets = batch["input_ids"][:, 1:]  # (B, T-1)
        if "loss_mask" in batch:  # few targets (completions only): the head runs on those alone
            hidden, targets = hidden[target_mask], targets[target_mask]  # (N, D), (N,)
        else:  # (nearly) every position is a target: no gather, whose size would need a host sync
            hidden = hidden.flatten(0, 1)  # (B * (T-1), D)
            targets = targets.masked_fill(~target_mask, IGNORE_INDEX).flatten()  # (B * (T-1),)
        head = lm.heads["lm"]
        loss_sum, correct = linear_cross_entropy(head.transform(hidden), head.weight, head.bias, targets)
        sums = {"lm_loss_sum": loss_sum.detach(), "lm_correct": correct, "lm_count": target_mask.sum()}
        return ObjectiveOutput(loss_sum / norm["lm"].clamp(min=1), sums)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``loss`` (nats per token), ``ppl`` and next-token ``acc``."""
        loss = ratio(sums, "lm_loss_sum", "lm_count")
        return {"loss": loss, "ppl": perplexity(loss), "acc": ratio(sums, "lm_correct", "lm_count")}
