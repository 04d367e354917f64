"""Schemas of the `model` group: one per model family, each extending the shared :class:`ModelConfig`.

A preset (configs/model/*.yaml) names its family's schema in its defaults list, so BERT's config
has no ELMo or ALBEF keys and ``model.lstm_dim=...`` on BERT fails at composition. ``_target_``
names the family's plug (:class:`lmtrain.models.family.ModelFamily`), which builds and loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lmtrain.config.checks import ConfigRangeError, check_range


@dataclass
class ModelConfig:
    """What every model family has."""

    _target_: str = ""  # the family's plug class (set by each family's schema)
    name: str = "bert"  # preset name: shown in run names, used to find compatible runs
    family: str = ""  # the family (set by each family's schema; recorded in model.json)
    n_layers: Optional[int] = None  # layers (Transformer blocks, LSTM layers)
    d_model: Optional[int] = None  # hidden width
    dropout: float = 0.1  # dropout on embeddings and between layers

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model"):
            check_range(self, name, 1)
        check_range(self, "dropout", 0, 1, high_open=True)


@dataclass
class TransformerConfig(ModelConfig):
    """A Transformer backbone (BERT, RoBERTa, GPT-2). The presets set the family switches."""

    _target_: str = "lmtrain.models.families.TransformerFamily"
    family: str = "transformer"
    size: Optional[str] = None  # tiny | mini | small | medium | base: fills the dimensions left unset
    n_heads: Optional[int] = None  # attention heads (d_model must divide evenly)
    d_ff: Optional[int] = None  # feed-forward inner width
    max_positions: int = 512  # longest sequence the position table covers
    causal: bool = False  # causal (GPT) or bidirectional (BERT) attention
    norm: str = "post"  # post (BERT: norm after the residual add) | pre (GPT-2)
    segment_vocab_size: int = 2  # number of segment (token type) ids; 0 = no segment embeddings
    position: str = "learned"  # learned | sinusoidal
    position_offset: int = 0  # first position id (RoBERTa starts at padding_idx + 1 = 2)
    activation: str = "gelu"  # gelu (exact, BERT) | gelu_tanh (GPT-2) | relu
    attention_dropout: float = 0.1  # dropout on attention probabilities
    layer_norm_eps: float = 1e-12  # BERT uses 1e-12, GPT-2 1e-5
    embedding_norm: bool = True  # LayerNorm right after the embeddings (BERT, RoBERTa)
    final_norm: bool = False  # LayerNorm after the last block (GPT-2's ln_f)
    tie_embeddings: bool = True  # output projection shares the input embedding matrix
    checkpoint_activations: bool = False  # recompute block activations in backward to save memory
    init_std: float = 0.02  # std of the normal weight initialisation

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_heads", "d_ff", "max_positions"):
            check_range(self, name, 1)
        for name in ("segment_vocab_size", "position_offset", "init_std"):
            check_range(self, name, 0)
        check_range(self, "attention_dropout", 0, 1, high_open=True)
        check_range(self, "layer_norm_eps", 0, low_open=True)


@dataclass
class ElmoConfig(ModelConfig):
    """ELMo's biLM: a character CNN (or a token table), then forward and backward LSTM layers."""

    _target_: str = "lmtrain.models.families.ElmoFamily"
    name: str = "elmo"
    family: str = "elmo"
    token_encoder: str = "char_cnn"  # char_cnn (ELMo's character CNN) | embedding (token lookup table)
    max_chars: int = 20  # characters per token seen by the char CNN (begin/end-of-word included)
    char_dim: int = 16  # character embedding width
    char_filter_widths: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])  # CNN filter widths
    char_filter_counts: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 256])  # filters per width
    highway_layers: int = 2  # highway layers after the char CNN
    lstm_dim: int = 512  # LSTM cell size; each layer projects back to d_model (LSTMP)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_chars", "char_dim", "lstm_dim", "char_filter_widths", "char_filter_counts"):
            check_range(self, name, 1)
        check_range(self, "highway_layers", 0)


@dataclass
class AlbefConfig(TransformerConfig):
    """ALBEF: a ViT, and a Transformer whose first layers encode the text and last layers fuse it with the image."""

    _target_: str = "lmtrain.models.families.AlbefFamily"
    name: str = "albef"
    family: str = "albef"
    fusion_layers: int = 1  # the last N of n_layers cross-attend to the image (the fusion encoder)
    embed_dim: int = 64  # width of the shared image-text feature space
    image_size: int = 32  # side of the square input images, in pixels
    patch_size: int = 8  # side of a ViT patch (image_size must be a multiple)
    vision_layers: int = 2  # ViT blocks
    vision_d_model: int = 128  # ViT width
    vision_n_heads: int = 2  # ViT attention heads
    vision_d_ff: int = 512  # ViT feed-forward width
    queue_size: int = 1024  # momentum features queued as negatives (a multiple of the global batch)
    momentum: float = 0.995  # EMA coefficient of the momentum encoders
    temp: float = 0.07  # initial contrastive temperature (learned, clamped to [0.001, 0.5])

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "embed_dim",
            "image_size",
            "patch_size",
            "vision_layers",
            "vision_d_model",
            "vision_n_heads",
            "vision_d_ff",
            "queue_size",
        ):
            check_range(self, name, 1)
        check_range(self, "fusion_layers", 0)
        check_range(self, "momentum", 0, 1)
        check_range(self, "temp", 0, low_open=True)
        if self.image_size % self.patch_size:
            raise ConfigRangeError(
                "image_size",
                f"a multiple of model.patch_size={self.patch_size}",
                self.image_size,
                "the image is cut into whole patches",
            )


# family schema name in the ConfigStore (group schema/model) -> schema
MODEL_SCHEMAS = {"transformer": TransformerConfig, "elmo": ElmoConfig, "albef": AlbefConfig}
