"""The GRU language model: token embedding -> stacked GRU -> output projection tied to the embedding."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from lmtrain.models.protocol import NamedHeads
from lmtrain.models.spec import StoredSpec


@dataclass(frozen=True)
class GruSpec(StoredSpec):
    """The sizes model.json keeps; ``causal`` and ``max_positions`` are what generation asks of a causal LM."""

    vocab_size: int
    d_model: int = 64
    n_layers: int = 1
    dropout: float = 0.1
    pad_token_id: int = 0
    causal: bool = True  # a recurrent model sees only the past
    max_positions: int | None = None  # no position table: no length limit


class GruBackbone(nn.Module):
    """(B, T) token ids -> (B, T, D) states; position t has read tokens <= t only."""

    def __init__(self, spec: GruSpec):
        super().__init__()
        self.token = nn.Embedding(spec.vocab_size, spec.d_model, padding_idx=spec.pad_token_id)
        self.gru = nn.GRU(
            spec.d_model,
            spec.d_model,
            spec.n_layers,
            batch_first=True,
            dropout=spec.dropout if spec.n_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(spec.dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        states, _ = self.gru(self.dropout(self.token(input_ids)))  # (B, T, D)
        return self.dropout(states)


class TiedLMHead(nn.Module):
    """(..., D) -> (..., V) with the embedding's matrix: the ``transform`` / ``weight`` / ``bias`` surface
    lmtrain's causal-LM loss fuses."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.weight = embedding.weight
        self.register_parameter("bias", None)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The features the projection reads: ``hidden`` itself."""
        return hidden

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.weight.T  # (..., V)


class GruLanguageModel(NamedHeads):
    """What lmtrain trains, saves and loads: ``backbone``, ``heads`` and the names model.json records."""

    family = "gru"

    def __init__(self, spec: GruSpec, head_names: Iterable[str] = ("lm",)):
        super().__init__()
        self.spec = spec
        self.backbone = GruBackbone(spec)
        self.pretraining_heads = list(head_names)
        self.task_heads: dict[str, dict] = {}
        self.heads = nn.ModuleDict({name: TiedLMHead(self.backbone.token) for name in self.pretraining_heads})
