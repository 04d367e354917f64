"""Causal language modelling (GPT): predict every next token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.objectives.base import Objective, ObjectiveOutput, perplexity, ratio


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

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor],
                 norm: dict[str, torch.Tensor]) -> ObjectiveOutput:
        """Next-token loss of ``batch``; see :class:`lmtrain.objectives.base.Objective`."""
        # Batches are right-padded: padding comes after every real token, so causal attention
        # alone keeps it out of sight of real positions. No padding mask means SDPA's fused causal
        # kernel for every batch and no host sync to find out whether a batch is padded.
        hidden = model.backbone(batch["input_ids"])[:, :-1]  # (B, T-1, D): position t predicts t+1
        target_mask = self._target_mask(batch)  # (B, T-1)
        targets = batch["input_ids"][:, 1:]  # (B, T-1)
        if "loss_mask" in batch:  # few targets (completions only): the head runs on those alone
            logits = model.heads["lm"](hidden[target_mask]).float()  # (N, V)
            targets = targets[target_mask]  # (N,)
        else:  # (nearly) every position is a target: no gather, whose size would need a host sync
            logits = model.heads["lm"](hidden).float().flatten(0, 1)  # (B * (T-1), V)
            targets = targets.masked_fill(~target_mask, IGNORE_INDEX).flatten()  # (B * (T-1),)
        loss_sum = F.cross_entropy(logits, targets, reduction="sum", ignore_index=IGNORE_INDEX)
        sums = {"lm_loss_sum": loss_sum.detach(), "lm_correct": (logits.argmax(-1) == targets).sum(),
                "lm_count": target_mask.sum()}  # an ignored target (-100) never equals an argmax
        return ObjectiveOutput(loss_sum / norm["lm"].clamp(min=1), sums)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``loss`` (nats per token), ``ppl`` and next-token ``acc``."""
        loss = ratio(sums, "lm_loss_sum", "lm_count")
        return {"loss": loss, "ppl": perplexity(loss), "acc": ratio(sums, "lm_correct", "lm_count")}
