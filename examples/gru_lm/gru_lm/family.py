"""The GRU family's plug: its schema, what it can do, how it is built and rebuilt from a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gru_lm.model import GruLanguageModel, GruSpec
from lmtrain.config.checks import check_range
from lmtrain.config.models import ModelConfig
from lmtrain.models.capabilities import Capability
from lmtrain.models.families import ModelFamily


@dataclass
class GruConfig(ModelConfig):
    """`model=gru`: a GRU language model."""

    _target_: str = "gru_lm.GruFamily"
    name: str = "gru"
    family: str = "gru"
    n_layers: int = 1  # stacked GRU layers
    d_model: int = 64  # embedding and GRU width

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "n_layers", 1)


class GruFamily(ModelFamily):
    """A causal LM without attention: it trains with objective=clm, generates, fine-tunes on task=generation."""

    name = "gru"
    config_class = GruConfig
    capabilities = frozenset({Capability.CAUSAL_LM, Capability.WEIGHTS_EXPORT})

    def build(self, tokenizer, head_names: Sequence[str], max_seq_len: int) -> GruLanguageModel:
        """A new GRU LM for ``tokenizer``'s vocabulary (it takes sequences of any length)."""
        spec = GruSpec(
            vocab_size=tokenizer.vocab_size,
            d_model=self.cfg.d_model,
            n_layers=self.cfg.n_layers,
            dropout=self.cfg.dropout,
            pad_token_id=tokenizer.id("pad"),
        )
        return GruLanguageModel(spec, head_names)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> GruLanguageModel:
        """The model a checkpoint's model.json describes (its weights are loaded after)."""
        return GruLanguageModel(GruSpec.from_dict(meta["spec"]), meta["heads"])
