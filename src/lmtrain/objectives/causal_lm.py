"""Causal language modelling (GPT): predict every next token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
        attention_mask = batch["attention_mask"]
        # Unpadded (packed) batches take SDPA's fused causal path; padded ones pass the mask.
        padded = None if bool(attention_mask.all()) else attention_mask
        hidden = model.backbone(batch["input_ids"], padded)
        target_mask = self._target_mask(batch)  # (B, T-1)
        logits = model.heads["lm"](hidden[:, :-1][target_mask]).float()  # (N, V)
        targets = batch["input_ids"][:, 1:][target_mask]  # (N,)
        loss_sum = F.cross_entropy(logits, targets, reduction="sum")
        sums = {"lm_loss_sum": loss_sum.detach(), "lm_correct": (logits.argmax(-1) == targets).sum(),
                "lm_count": target_mask.sum()}
        return ObjectiveOutput(loss_sum / norm["lm"].clamp(min=1), sums)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``loss`` (nats per token), ``ppl`` and next-token ``acc``."""
        loss = ratio(sums, "lm_loss_sum", "lm_count")
        return {"loss": loss, "ppl": perplexity(loss), "acc": ratio(sums, "lm_correct", "lm_count")}
