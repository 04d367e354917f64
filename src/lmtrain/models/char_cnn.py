"""ELMo's context-independent token encoder: a CNN over each token's characters.

Each vocabulary entry is spelled once, at model build time, into a row of character ids
(its UTF-8 bytes between begin- and end-of-word marks); the table is a buffer, so the
encoder runs on token ids and the checkpoint holds everything needed to rebuild it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lmtrain.kernels import Linear

CHAR_PAD = 0  # padding after the end-of-word mark
BYTE_OFFSET = 1  # byte b has character id b + 1
BOW = 257  # begin of word
EOW = 258  # end of word
N_CHARS = 259


def spell(token: str, max_chars: int) -> list[int]:
    """Character ids of ``token``: BOW, its UTF-8 bytes (cut to fit), EOW, then padding."""
    body = [b + BYTE_OFFSET for b in token.encode("utf-8")][: max_chars - 2]
    row = [BOW, *body, EOW]
    return row + [CHAR_PAD] * (max_chars - len(row))


def char_table(tokens: Sequence[str], max_chars: int) -> torch.Tensor:
    """(V, max_chars) character ids of every vocabulary entry, in id order."""
    return torch.tensor([spell(t, max_chars) for t in tokens], dtype=torch.long)


def tokenizer_strings(tokenizer) -> list[str]:
    """The string of every id of a :class:`lmtrain.data.tokenizer.TextTokenizer` (its vocabulary entries)."""
    return [tokenizer.tokenizer.id_to_token(i) or "" for i in range(tokenizer.vocab_size)]


class Highway(nn.Module):
    """Highway layers (Srivastava et al. 2015): ``g * relu(W x) + (1 - g) * x`` with a learned gate g."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        layers = [Linear(dim, 2 * dim) for _ in range(n_layers)]
        self.layers = nn.ModuleList(layers)
        for layer in layers:
            nn.init.constant_(layer.bias[dim:], 1.0)  # gates start open towards the carry path (as in ELMo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, dim) -> (N, dim)."""
        for layer in self.layers:
            transform, gate = layer(x).chunk(2, dim=-1)
            gate = torch.sigmoid(gate)
            x = gate * x + (1 - gate) * torch.relu(transform)
        return x


class CharCNNEncoder(nn.Module):
    """Token ids -> vectors through the characters of each token (ELMo's char CNN).

    Args:
        vocab_size: number of token ids (rows of the character table).
        max_chars: characters per token.
        char_dim: character embedding width.
        widths: convolution widths, one filter bank per width.
        counts: filters per width.
        highway_layers: highway layers after max-pooling.
        out_dim: width of the projected token vectors.
        chars: the (vocab_size, max_chars) table from :func:`char_table`; zeros if None
            (then a checkpoint's weights fill it in).
    """

    chars: torch.Tensor  # buffer (vocab_size, max_chars): the character table

    def __init__(
        self,
        vocab_size: int,
        max_chars: int,
        char_dim: int,
        widths: Sequence[int],
        counts: Sequence[int],
        highway_layers: int,
        out_dim: int,
        chars: torch.Tensor | None = None,
    ):
        super().__init__()
        if chars is None:
            chars = torch.zeros(vocab_size, max_chars, dtype=torch.long)
        if tuple(chars.shape) != (vocab_size, max_chars):
            raise ValueError(f"character table of shape {tuple(chars.shape)}, expected {(vocab_size, max_chars)}")
        self.register_buffer("chars", chars.long())
        self.embed = nn.Embedding(N_CHARS, char_dim, padding_idx=CHAR_PAD)
        convs = [nn.Conv1d(char_dim, n, w) for w, n in zip(widths, counts) if w <= max_chars]
        self.convs = nn.ModuleList(convs)
        total = sum(conv.out_channels for conv in convs)
        self.highway = Highway(total, highway_layers)
        self.proj = Linear(total, out_dim)

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """(N,) token ids -> (N, out_dim): each token from its characters alone."""
        chars = self.embed(self.chars[ids]).transpose(1, 2)  # (N, char_dim, max_chars)
        pooled = [torch.tanh(conv(chars)).amax(dim=-1) for conv in self.convs]  # each (N, n_filters)
        return self.proj(self.highway(torch.cat(pooled, dim=-1)))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, out_dim); each distinct id is encoded once per batch."""
        unique, inverse = torch.unique(input_ids, return_inverse=True)
        return self.encode_ids(unique)[inverse]  # (B, T, out_dim)
