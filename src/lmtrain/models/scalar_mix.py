"""ELMo's scalar mix: a task-specific, softmax-normalised weighting of a model's layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ScalarMix(nn.Module):
    """``gamma * sum_j softmax(w)_j * layer_j`` (Peters et al. 2018, eq. 1).

    Args:
        n_layers: how many layers are mixed.
        initial_weights: starting (pre-softmax) weights, zeros = an equal mix.
    """

    def __init__(self, n_layers: int, initial_weights: Sequence[float] | None = None):
        super().__init__()
        weights = torch.zeros(n_layers) if initial_weights is None else torch.tensor(list(initial_weights))
        if weights.numel() != n_layers:
            raise ValueError(f"{weights.numel()} initial weights for {n_layers} layers")
        self.weights = nn.Parameter(weights.float())
        self.gamma = nn.Parameter(torch.ones(1))

    def normalized_weights(self) -> torch.Tensor:
        """The softmax-normalised layer weights, (n_layers,)."""
        return self.weights.softmax(0)

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mix ``layers`` (each of the same shape) into one tensor of that shape."""
        if len(layers) != self.weights.numel():
            raise ValueError(f"{len(layers)} layers given to a mix of {self.weights.numel()}")
        stacked = torch.stack(list(layers))  # (L, ...)
        weights = self.normalized_weights().to(stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
        return self.gamma.to(stacked.dtype) * (weights * stacked).sum(0)
