"""A task's own bidirectional LSTM over a backbone's features (ELMo's task models, Peters et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn

from lmtrain.models.elmo import reverse_within_length


class BiLSTMEncoder(nn.Module):
    """One forward and one backward LSTM layer: (B, T, d_in) -> (B, T, 2 lstm_dim).

    The backward LSTM reads each sequence reversed within its own length, so right-padding never
    reaches the states of real tokens (no packing, which would need the lengths on the host).

    Args:
        d_in: width of the input features.
        lstm_dim: cells per direction.
    """

    def __init__(self, d_in: int, lstm_dim: int):
        super().__init__()
        self.forward_lstm = nn.LSTM(d_in, lstm_dim, batch_first=True)
        self.backward_lstm = nn.LSTM(d_in, lstm_dim, batch_first=True)
        self.d_out = 2 * lstm_dim

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """States of both directions joined, (B, T, 2 lstm_dim); ``attention_mask`` (B, T) marks real tokens."""
        lengths = None if attention_mask is None else attention_mask.sum(1)
        forward, _ = self.forward_lstm(x)  # (B, T, lstm_dim)
        backward, _ = self.backward_lstm(reverse_within_length(x, lengths))
        return torch.cat([forward, reverse_within_length(backward, lengths)], dim=-1)
