"""Check a Hugging Face ``config.json`` before any model is built from it.

First its values: sizes are whole numbers of at least 1, token ids whole numbers of at least 0,
probabilities between 0 and 1, flags true or false, names strings. Then its sizes against the
shapes of the tensors in its weight files (:mod:`lmtrain.models.hf_weight_files`): the vocabulary,
width, positions, token types, feed-forward width and number of layers must be what the weights
hold. A config that claims a million layers or a billion-token vocabulary is refused in
milliseconds, naming the file, the key, its value and what the weights say, instead of allocating
gigabytes for a model its weights could never fill.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError

# required sizes, optional sizes (null: a default), per family; "encoder" is BERT, RoBERTa and XLM-RoBERTa
_SIZES = {
    "encoder": (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
    ),
    "gpt2": ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions"),
}
_OPTIONAL_SIZES = {"encoder": ("type_vocab_size",), "gpt2": ("n_inner",)}
_WIDTH = {"encoder": ("hidden_size", "num_attention_heads"), "gpt2": ("n_embd", "n_head")}
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop", "embd_pdrop", "attn_pdrop")
_POSITIVE = ("layer_norm_eps", "layer_norm_epsilon")
_FLAGS = (
    "tie_word_embeddings",
    "add_cross_attention",
    "is_decoder",
    "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx",
)
_NAMES = ("hidden_act", "activation_function", "position_embedding_type")

# tensor (HF name without the bert./roberta./transformer. prefix) -> the config keys its dimensions are
_REFERENCES = {
    "encoder": {
        "embeddings.word_embeddings.weight": ("vocab_size", "hidden_size"),
        "embeddings.position_embeddings.weight": ("max_position_embeddings", "hidden_size"),
        "embeddings.token_type_embeddings.weight": ("type_vocab_size", "hidden_size"),
        "encoder.layer.0.intermediate.dense.weight": ("intermediate_size", "hidden_size"),
    },
    "gpt2": {
        "wte.weight": ("vocab_size", "n_embd"),
        "wpe.weight": ("n_positions", "n_embd"),
        "h.0.mlp.c_fc.weight": ("n_embd", "n_inner"),
    },
}
_LAYERS = {
    "encoder": ("num_hidden_layers", "encoder.layer.", re.compile(r"^encoder\.layer\.(\d+)\.")),
    "gpt2": ("n_layer", "h.", re.compile(r"^h\.(\d+)\.")),
}


def read_hf_config(folder: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of the Hugging Face folder ``folder``.

    Raises:
        UserError: the folder or its config.json is missing, or the file is not a JSON object.
    """
    path = folder / "config.json"
    if not path.is_file():
        what = "does not exist" if not folder.exists() else "has no config.json"
        raise UserError(
            f"{folder} {what}: expected a Hugging Face model folder as written by save_pretrained, "
            "with config.json and model.safetensors (or pytorch_model.bin)."
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UserError(
            f"{path} is not valid JSON ({' '.join(str(error).split())[:200]}); expected a Hugging "
            "Face config.json as save_pretrained writes it."
        ) from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a JSON object; expected a Hugging Face config.json.")
    return config


def _layout(family: str) -> str:
    return "gpt2" if family == "gpt2" else "encoder"


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and math.isfinite(value)


def _is_count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _shown(key: str, value: Any) -> str:
    text = json.dumps(value)
    return f"{key}={text if len(text) <= 60 else text[:60] + '...'}"


def _value_problems(config: Mapping[str, Any], layout: str) -> list[str]:
    """What is wrong with each value ``config`` sets (an empty list when every value is usable)."""
    missing = [key for key in _SIZES[layout] if config.get(key) is None]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    sizes = [key for key in (*_SIZES[layout], *_OPTIONAL_SIZES[layout]) if config.get(key) is not None]
    problems += [
        f"{_shown(key, config[key])} (expected a whole number of at least 1)"
        for key in sizes
        if not _is_count(config[key], 1)
    ]
    pad_key = "eos_token_id" if layout == "gpt2" and config.get("pad_token_id") is None else "pad_token_id"
    if config.get(pad_key) is not None and not _is_count(config[pad_key], 0):
        problems.append(f"{_shown(pad_key, config[pad_key])} (expected a token id: a whole number of at least 0)")
    checks = [
        (_PROBABILITIES, lambda v: _is_number(v) and 0 <= v <= 1, "a probability between 0 and 1"),
        (_POSITIVE, lambda v: _is_number(v) and v > 0, "a number above 0"),
        (("initializer_range",), lambda v: _is_number(v) and v >= 0, "a number of at least 0"),
        (_FLAGS, lambda v: isinstance(v, bool), "true or false"),
        (_NAMES, lambda v: isinstance(v, str), "a string"),
    ]
    for keys, fits, expected in checks:
        problems += [
            f"{_shown(key, config[key])} (expected {expected})"
            for key in keys
            if config.get(key) is not None and not fits(config[key])
        ]
    width, heads = _WIDTH[layout]
    if not problems and config[width] % config[heads]:
        problems.append(
            f"{_shown(heads, config[heads])} does not divide {_shown(width, config[width])} "
            "(each attention head takes an equal share of the width)"
        )
    return problems


def check_config_values(config: Mapping[str, Any], family: str, source: str) -> None:
    """Refuse a config whose values lmtrain cannot build from: missing, mistyped or out-of-range settings.

    Args:
        config: the parsed config.json.
        family: bert, roberta or gpt2 (its model_type's family).
        source: the config's path, for the message.
    Raises:
        UserError: naming the file, each bad key, its value and what it must be.
    """
    problems = _value_problems(config, _layout(family))
    if problems:
        listed = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise UserError(
            f"{source} lacks or mistypes a setting its model needs: {listed}. It is not a usable "
            "Hugging Face config.json: fix these values, or write the folder again with save_pretrained."
        )


def _size(config: Mapping[str, Any], key: str) -> tuple[int, str]:
    """The value of size ``key`` and how a message shows it (a default says so)."""
    if config.get(key) is not None:
        return config[key], _shown(key, config[key])
    value = {"type_vocab_size": 2, "n_inner": 4 * config.get("n_embd", 0)}[key]
    return value, f"{key} (unset, so {value})"


def _shape_problems(config: Mapping[str, Any], layout: str, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    key, prefix, pattern = _LAYERS[layout]
    indices = sorted({int(match[1]) for match in map(pattern.match, shapes) if match})
    layers = len(indices)
    if indices and indices[-1] != layers - 1:  # numbered with gaps: a count from the highest number would lie
        return [f"the weights' layers are not numbered 0 to {layers - 1}: they hold {prefix}{indices[-1]}"]
    problems = (
        []
        if config[key] == layers
        else [
            f"{_shown(key, config[key])}, but the weights hold {layers} layer{'s' if layers != 1 else ''}"
            + (f" ({prefix}0 to {prefix}{layers - 1})" if layers > 1 else f" ({prefix}0)" if layers else "")
        ]
    )
    for tensor, keys in _REFERENCES[layout].items():
        shape = shapes.get(tensor)
        if shape is None:
            continue  # a missing tensor is named with every other missing one, still before building
        wanted = [_size(config, key) for key in keys]
        differing = [
            shown for dim, (value, shown) in enumerate(wanted) if len(shape) != len(keys) or shape[dim] != value
        ]
        if differing:
            problems.append(f"{' and '.join(differing)}, but the weights' {tensor} has shape {list(shape)}")
    return problems


def check_config_fits_weights(
    config: Mapping[str, Any], family: str, shapes: Mapping[str, tuple[int, ...]], source: str, weights: str
) -> None:
    """Refuse a config whose sizes differ from its weights' shapes, before any model is built.

    Args:
        config: the parsed config.json, already accepted by :func:`check_config_values`.
        family: bert, roberta or gpt2.
        shapes: tensor name (without the base-model prefix) -> shape, from the weight files' headers.
        source: the config's path; ``weights``: how to name the weight files.
    Raises:
        UserError: naming the file, each key and value, and the shape the weights hold instead.
    """
    problems = _shape_problems(config, _layout(family), shapes)
    if problems:
        raise UserError(
            f"{source} does not describe its weights ({weights}): {'; '.join(problems[:4])}. Check that "
            "config.json and the weights belong to the same model; lmtrain builds no model from a config "
            "its weights contradict."
        )
