"""ELMo's bidirectional language model (Peters et al. 2018).

A context-independent token encoder (a character CNN, or a plain embedding table), then L
layers of forward and L layers of backward LSTMs with a linear projection after each layer
and residual connections between layers. Both directions share
one softmax (``heads["lm"]``). The backward LSTMs read each sequence reversed within its own
length, so right-padding never flows into the states of real tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from lmtrain.config.models import ElmoConfig
from lmtrain.errors import UserError
from lmtrain.kernels import Dropout, Linear
from lmtrain.models.char_cnn import CharCNNEncoder, char_table
from lmtrain.models.protocol import NamedHeads
from lmtrain.models.spec import StoredSpec

TOKEN_ENCODERS = ("char_cnn", "embedding")


@dataclass(frozen=True)
class ElmoSpec(StoredSpec):
    """Every size of a biLM, resolved; stored in ``model.json`` to rebuild the model."""

    vocab_size: int
    d_model: int = 128  # token vectors and each LSTM layer's projected output
    n_layers: int = 2  # LSTM layers per direction
    lstm_dim: int = 512  # LSTM cell size
    token_encoder: str = "char_cnn"
    max_chars: int = 20
    char_dim: int = 16
    char_filter_widths: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    char_filter_counts: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 256])
    highway_layers: int = 2
    dropout: float = 0.1
    pad_token_id: int = 0

    @property
    def max_positions(self) -> int | None:
        """No position limit: LSTMs read sequences of any length."""
        return None

    @property
    def causal(self) -> bool:
        """A biLM is not a left-to-right model: its features see both sides (no generation)."""
        return False


def resolve_elmo_spec(model_cfg: ElmoConfig, vocab_size: int, pad_token_id: int) -> ElmoSpec:
    """An :class:`ElmoSpec` from the `model` config group (``model.family=elmo``).

    Args:
        model_cfg: the `model` config group; ``d_model`` and ``n_layers`` must be set.
        vocab_size: size of the tokenizer's vocabulary.
        pad_token_id: id of the padding token.
    Raises:
        UserError: unknown token encoder, missing sizes or mismatched filter lists.
    """
    if model_cfg.token_encoder not in TOKEN_ENCODERS:
        raise UserError(
            f"model.token_encoder={model_cfg.token_encoder} is not supported; "
            f"choose one of {', '.join(TOKEN_ENCODERS)}."
        )
    if model_cfg.d_model is None or model_cfg.n_layers is None:
        raise UserError("model.family=elmo needs model.d_model and model.n_layers (model.size is for Transformers).")
    widths, counts = list(model_cfg.char_filter_widths), list(model_cfg.char_filter_counts)
    if len(widths) != len(counts) or not widths:
        raise UserError(
            f"model.char_filter_widths ({len(widths)} values) and model.char_filter_counts "
            f"({len(counts)} values) must be non-empty and of equal length."
        )
    if model_cfg.max_chars < 3:
        raise UserError(f"model.max_chars={model_cfg.max_chars} leaves no room for a character; use 3 or more.")
    return ElmoSpec(
        vocab_size=vocab_size,
        d_model=model_cfg.d_model,
        n_layers=model_cfg.n_layers,
        lstm_dim=model_cfg.lstm_dim,
        token_encoder=model_cfg.token_encoder,
        max_chars=model_cfg.max_chars,
        char_dim=model_cfg.char_dim,
        char_filter_widths=widths,
        char_filter_counts=counts,
        highway_layers=model_cfg.highway_layers,
        dropout=model_cfg.dropout,
        pad_token_id=pad_token_id,
    )


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence of ``x`` (B, T, ...) within its own length; padding stays at the end.

    Applying it twice restores ``x``. ``lengths`` None means every sequence is full.
    """
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class BiLMOutput(NamedTuple):
    """States of a biLM, every tensor (B, T, d_model) in the input's token order.

    ``forward[j]`` at t has read tokens 0..t; ``backward[j]`` at t has read tokens t..end.
    """

    tokens: torch.Tensor  # context-independent token vectors (ELMo's layer 0)
    forward: list[torch.Tensor]
    backward: list[torch.Tensor]


class LSTMStack(nn.Module):
    """One direction: LSTM layers, each projected back to d_model, residual between layers (from layer 2 on).

    The projection sits after each layer rather than inside the recurrence (``proj_size``)
    because PyTorch's fused CPU kernels do not support ``proj_size`` (about 4x slower).
    """

    def __init__(self, d_model: int, lstm_dim: int, n_layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(nn.LSTM(d_model, lstm_dim, batch_first=True) for _ in range(n_layers))
        self.projections = nn.ModuleList(Linear(lstm_dim, d_model) for _ in range(n_layers))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, T, d_model) left to right -> every layer's (B, T, d_model) output."""
        outputs = []
        for i, (lstm, proj) in enumerate(zip(self.layers, self.projections)):
            h, _ = lstm(x)  # (B, T, lstm_dim)
            h = self.dropout(proj(h))  # (B, T, d_model)
            x = h + x if i > 0 else h  # the paper's residual connection between LSTM layers
            outputs.append(x)
        return outputs


class BiLM(nn.Module):
    """Token encoder plus forward and backward :class:`LSTMStack` s.

    Args:
        spec: the sizes.
        chars: the (vocab_size, max_chars) character table of the char CNN (see
            :func:`lmtrain.models.char_cnn.char_table`); None for an embedding encoder or when
            a checkpoint will fill it.
    """

    def __init__(self, spec: ElmoSpec, chars: torch.Tensor | None = None):
        super().__init__()
        self.spec = spec
        self.encoder: CharCNNEncoder | nn.Embedding
        if spec.token_encoder == "char_cnn":
            self.encoder = CharCNNEncoder(
                spec.vocab_size,
                spec.max_chars,
                spec.char_dim,
                spec.char_filter_widths,
                spec.char_filter_counts,
                spec.highway_layers,
                spec.d_model,
                chars,
            )
        else:
            self.encoder = nn.Embedding(spec.vocab_size, spec.d_model)
        self.dropout = Dropout(spec.dropout)
        self.forward_lm = LSTMStack(spec.d_model, spec.lstm_dim, spec.n_layers, spec.dropout)
        self.backward_lm = LSTMStack(spec.d_model, spec.lstm_dim, spec.n_layers, spec.dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> BiLMOutput:
        """States of ``input_ids`` (B, T); ``attention_mask`` (B, T) marks real tokens, right-padded."""
        tokens = self.encoder(input_ids)  # (B, T, d_model)
        x = self.dropout(tokens)
        # reversing within each length is a plain flip for full rows: no host sync to find out which
        lengths = None if attention_mask is None else attention_mask.sum(1)
        forward = self.forward_lm(x)
        backward = [reverse_within_length(h, lengths) for h in self.backward_lm(reverse_within_length(x, lengths))]
        return BiLMOutput(tokens, forward, backward)


class ElmoLanguageModel(NamedHeads):
    """``backbone`` (a :class:`BiLM`) plus ``heads["lm"]``: one softmax shared by both directions.

    A :class:`~lmtrain.models.protocol.TrainedModel`, so the trainer, checkpoints and ``model.json``
    treat it like any other model.
    """

    family = "elmo"
    spec: ElmoSpec

    def __init__(self, spec: ElmoSpec, head_names: Iterable[str] = ("lm",), chars: torch.Tensor | None = None):
        super().__init__()
        self.spec = spec
        self.backbone = BiLM(spec, chars)
        self.pretraining_heads = list(head_names)
        unknown = [n for n in self.pretraining_heads if n != "lm"]
        if unknown:
            raise UserError(f"an ELMo model has only the lm head, not {', '.join(unknown)}; use objective=bilm.")
        self.task_heads: dict[str, dict] = {}
        self.heads = nn.ModuleDict({name: Linear(spec.d_model, spec.vocab_size) for name in self.pretraining_heads})


def build_elmo(spec: ElmoSpec, tokens: Sequence[str] | None) -> ElmoLanguageModel:
    """A fresh biLM whose char CNN spells ``tokens`` (the vocabulary, in id order)."""
    chars = char_table(tokens, spec.max_chars) if tokens is not None and spec.token_encoder == "char_cnn" else None
    return ElmoLanguageModel(spec, ("lm",), chars)
