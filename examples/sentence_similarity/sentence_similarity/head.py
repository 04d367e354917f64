"""A regression head: one bounded score per sequence (not a one-class classifier)."""

from __future__ import annotations

import torch
from torch import nn

from lmtrain.models.heads import TaskHead


class RegressionHead(TaskHead):
    """The first token's state -> dropout -> dense -> tanh -> dropout -> one number, squashed into [0, max_score].

    Args:
        d_model: width of the hidden states.
        max_score: the highest score (the lowest is 0).
        dropout: dropout before the dense layer and before the output.
        init_std: std of the normal weight initialisation.
    """

    def __init__(self, d_model: int, max_score: float, dropout: float = 0.0, init_std: float = 0.02):
        super().__init__()
        self.max_score = max_score
        self.dense, self.output, self.dropout = nn.Linear(d_model, d_model), nn.Linear(d_model, 1), nn.Dropout(dropout)
        for layer in (self.dense, self.output):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_description(cls, description: dict, d_model: int, init_std: float = 0.02) -> RegressionHead:
        """The head of the description :meth:`SimilarityTask.head_description` wrote (model.json keeps it)."""
        return cls(d_model, float(description["max_score"]), float(description.get("dropout", 0.0)), init_std)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B,) scores in [0, max_score]."""
        pooled = torch.tanh(self.dense(self.dropout(hidden[:, 0])))  # (B, D)
        return self.max_score * torch.sigmoid(self.output(self.dropout(pooled)).squeeze(-1))
