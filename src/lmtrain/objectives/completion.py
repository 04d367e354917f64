"""Prompt -> completion fine-tuning: next-token loss on the completion tokens only."""

from __future__ import annotations

import torch

from lmtrain.objectives.causal_lm import CausalLM


class CompletionLM(CausalLM):
    """:class:`CausalLM` on batches with a ``loss_mask`` that is 1 on completion tokens (and the end token).

    The prompt is read (attended to) but never predicted; ``loss`` / ``ppl`` / ``acc`` are per
    completion token.
    """

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Completion tokens to predict (``lm``) and real tokens (``tokens``)."""
        if "loss_mask" not in batch:
            raise ValueError("CompletionLM needs batches with a loss_mask (1 on completion tokens)")
        return super().count_targets(batch)
