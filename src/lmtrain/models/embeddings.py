"""The Transformer's input layer: token, position and segment embeddings, and the fixed sinusoidal table."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmtrain.kernels import Dropout
from lmtrain.models.spec import TransformerSpec


def sinusoidal_table(n_positions: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine position table of Vaswani et al. (2017), shape (n_positions, d_model)."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)  # (P, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class Embeddings(nn.Module):
    """Token + position (+ segment) embeddings, optionally normalised, then dropout."""

    position_table: torch.Tensor  # (P, D) buffer, sinusoidal positions only

    def __init__(self, spec: TransformerSpec):
        super().__init__()
        self.spec = spec
        self.token = nn.Embedding(spec.vocab_size, spec.d_model)
        n_positions = spec.max_positions + spec.position_offset
        if spec.position == "learned":
            self.position = nn.Embedding(n_positions, spec.d_model)
        else:
            self.register_buffer("position_table", sinusoidal_table(n_positions, spec.d_model), persistent=False)
        self.segment = nn.Embedding(spec.segment_vocab_size, spec.d_model) if spec.segment_vocab_size else None
        self.norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps) if spec.embedding_norm else None
        self.dropout = Dropout(spec.dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Embed ``input_ids`` (B, T) at ``position_ids`` (B, T) or (1, T); returns (B, T, D)."""
        positions = position_ids + self.spec.position_offset
        if self.spec.position == "learned":
            x = self.token(input_ids) + self.position(positions)
        else:
            x = self.token(input_ids) + self.position_table[positions]
        if self.segment is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.segment(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)
