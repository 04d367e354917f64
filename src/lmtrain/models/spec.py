"""The resolved, plain-value description of a Transformer backbone.

`ModelConfig` (Hydra) may leave dimensions to a size preset; `TransformerSpec` has every value
filled in and is what the model is built from and what checkpoints store as JSON.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from lmtrain.config.models import TransformerConfig
from lmtrain.errors import UserError

# size -> (n_layers, d_model, n_heads, d_ff); mini/small follow Turc et al. (2019)'s compact BERTs
SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
}

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


_Spec = TypeVar("_Spec", bound="StoredSpec")  # typing.Self needs Python 3.11; lmtrain runs on 3.10


class StoredSpec:
    """``to_dict`` / ``from_dict`` of the frozen spec dataclasses that checkpoints keep in ``model.json``."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every subclass is a dataclass

    def to_dict(self) -> dict[str, Any]:
        """Plain (nested) values for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[_Spec], values: dict[str, Any]) -> _Spec:
        """Rebuild from :meth:`to_dict` output, ignoring keys this version does not know.

        Raises:
            UserError: ``values`` is not a mapping, or a value is not of its field's type (a ``model.json``
                altered by hand: ``"n_layers": "2"``, ``true`` for a size, a negative size).
        """
        if not isinstance(values, dict):
            raise UserError(
                f"model.json: the {cls.__name__} spec is {type(values).__name__}, not an object; use the "
                "model.json written with the checkpoint's weights."
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key in fields and not _fits(str(fields[key].type), value):
                raise UserError(
                    f"model.json: spec.{key}={value!r} is not a valid {fields[key].type}; use the "
                    "model.json written with the checkpoint's weights."
                )
        return cls(**{k: v for k, v in values.items() if k in fields})


def _fits(annotation: str, value: Any) -> bool:
    """Whether ``value`` (read from JSON) is of the plain type ``annotation`` names; other annotations pass."""
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if annotation == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation == "str":
        return isinstance(value, str)
    if annotation == "list[int]":
        return isinstance(value, list) and all(_fits("int", v) for v in value)
    return True


@dataclass(frozen=True)
class TransformerSpec(StoredSpec):
    """Every choice that distinguishes BERT, RoBERTa and GPT-2, with all sizes resolved."""

    vocab_size: int
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    max_positions: int = 512
    causal: bool = False
    norm: str = "post"
    segment_vocab_size: int = 2
    position: str = "learned"
    position_offset: int = 0
    activation: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    embedding_norm: bool = True
    final_norm: bool = False
    tie_embeddings: bool = True
    checkpoint_activations: bool = False
    init_std: float = 0.02
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads


def _dimensions(model_cfg: TransformerConfig) -> tuple[int, int, int, int]:
    """n_layers, d_model, n_heads and d_ff: each as set, else from ``model.size``'s preset.

    Raises:
        UserError: an unknown size, or a dimension neither set nor given by a size.
    """
    size = model_cfg.size
    dims = [model_cfg.n_layers, model_cfg.d_model, model_cfg.n_heads, model_cfg.d_ff]
    if size is not None:
        if size not in SIZES:
            raise UserError(
                f"model.size={size} is not a known size; choose one of {', '.join(SIZES)} "
                "or set model.n_layers, model.d_model, model.n_heads and model.d_ff."
            )
        dims = [given if given is not None else preset for given, preset in zip(dims, SIZES[size])]
    names = ["n_layers", "d_model", "n_heads", "d_ff"]
    missing = [f"model.{name}" for name, value in zip(names, dims) if value is None]
    if missing:
        raise UserError(
            f"{', '.join(missing)} not set: give model.size (one of {', '.join(SIZES)}) "
            "or set every dimension explicitly."
        )
    n_layers, d_model, n_heads, d_ff = [value for value in dims if value is not None]  # all four, as checked
    return n_layers, d_model, n_heads, d_ff


def resolve_spec(model_cfg: TransformerConfig, vocab_size: int, pad_token_id: int) -> TransformerSpec:
    """Fill a `TransformerConfig` (Hydra node or dataclass) into a complete, validated spec.

    Args:
        model_cfg: the `model` config group; unset dimensions come from `model.size`.
        vocab_size: size of the tokenizer's vocabulary.
        pad_token_id: id of the padding token.
    Returns:
        The resolved :class:`TransformerSpec`.
    Raises:
        UserError: unknown size or activation, or heads that do not divide the width.
    """
    n_layers, d_model, n_heads, d_ff = _dimensions(model_cfg)
    if d_model % n_heads:
        raise UserError(
            f"model.d_model={d_model} is not divisible by model.n_heads={n_heads}; "
            "choose a head count that divides the width."
        )
    if model_cfg.activation not in ACTIVATIONS:
        raise UserError(
            f"model.activation={model_cfg.activation} is not supported; choose one of {', '.join(ACTIVATIONS)}."
        )
    for key, allowed in (("norm", ("pre", "post")), ("position", ("learned", "sinusoidal"))):
        if getattr(model_cfg, key) not in allowed:
            raise UserError(
                f"model.{key}={getattr(model_cfg, key)} is not supported; choose one of {', '.join(allowed)}."
            )
    resolved = ("vocab_size", "n_layers", "d_model", "n_heads", "d_ff", "pad_token_id")
    # every other switch is the config's own value, under the same name
    switches = {
        f.name: getattr(model_cfg, f.name) for f in dataclasses.fields(TransformerSpec) if f.name not in resolved
    }
    return TransformerSpec(
        vocab_size=vocab_size,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_ff=d_ff,
        pad_token_id=pad_token_id,
        **switches,
    )
