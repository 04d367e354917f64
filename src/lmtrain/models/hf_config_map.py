"""Hugging Face ``config.json`` <-> lmtrain's :class:`TransformerSpec`, for BERT, RoBERTa and GPT-2.

The weight names are :mod:`lmtrain.models.hf_weight_names`'s; reading and writing whole folders is
:mod:`lmtrain.models.hf_interop`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmtrain.errors import UserError
from lmtrain.models.spec import TransformerSpec

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "gpt2")
_FAMILY = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "gpt2": "gpt2"}
_ARCH_PREFIX = {"bert": "Bert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta", "gpt2": "GPT2"}
_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
# the heads each family's pretraining architectures have
HF_HEADS = {"bert": ("mlm", "nsp"), "roberta": ("mlm",), "gpt2": ("lm",)}


def hf_family(model_type: object, source: str) -> str:
    """The weight layout (bert, roberta or gpt2) of a Hugging Face ``model_type`` (as read from config.json:
    any JSON value); ``source`` names where the type was read, for the error about an unsupported one."""
    if not isinstance(model_type, str) or model_type not in _FAMILY:
        raise UserError(
            f"{source}: model_type {model_type!r} is not supported; lmtrain reads and writes "
            f"Hugging Face models of type {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    return _FAMILY[model_type]


def spec_from_hf_config(config: dict, source: str = "config.json") -> tuple[TransformerSpec, list[str]]:
    """Translate a Hugging Face ``config.json`` into a :class:`TransformerSpec`.

    Args:
        config: the parsed config.json (``PretrainedConfig.to_dict()`` works too).
        source: where the config came from, for error messages.
    Returns:
        The spec and the head names the architecture supports (bert: mlm, nsp; roberta: mlm;
        gpt2: lm); which of them a checkpoint actually has is decided from its weights.
    Raises:
        UserError: an unsupported model_type or an option lmtrain's backbone cannot express.
    """
    family = hf_family(config.get("model_type"), source)
    if config.get("add_cross_attention") or (family != "gpt2" and config.get("is_decoder")):
        raise _unsupported(source, "a decoder with cross-attention or is_decoder=true")
    act_key = "activation_function" if family == "gpt2" else "hidden_act"
    activation = _ACT_FROM_HF.get(_value(config, act_key, "gelu_new" if family == "gpt2" else "gelu"))
    if activation is None:
        raise _unsupported(source, f"{act_key}={config[act_key]!r} (supported: {', '.join(_ACT_FROM_HF)})")
    shared = {
        "activation": activation,
        "tie_embeddings": bool(_value(config, "tie_word_embeddings", True)),
        "init_std": _value(config, "initializer_range", 0.02),
    }
    spec = _gpt2_spec(config, source, shared) if family == "gpt2" else _encoder_spec(config, source, family, shared)
    return spec, list(HF_HEADS[family])


def _value(config: dict, key: str, default: Any = None) -> Any:
    """``config[key]``, or ``default`` where the key is missing or null."""
    return config[key] if config.get(key) is not None else default


def _unsupported(source: str, what: str) -> UserError:
    return UserError(f"{source}: {what} is not supported by lmtrain's Transformer backbone.")


def _gpt2_spec(config: dict, source: str, shared: dict[str, Any]) -> TransformerSpec:
    """The spec of a GPT-2 ``config.json``; ``shared`` holds the fields read alike for every family."""
    if config.get("scale_attn_by_inverse_layer_idx") or not _value(config, "scale_attn_weights", True):
        raise _unsupported(source, "attention scaling other than 1/sqrt(head_dim)")
    d_model = config["n_embd"]
    return TransformerSpec(
        vocab_size=config["vocab_size"],
        n_layers=config["n_layer"],
        d_model=d_model,
        n_heads=config["n_head"],
        d_ff=_value(config, "n_inner", 4 * d_model),
        max_positions=config["n_positions"],
        causal=True,
        norm="pre",
        segment_vocab_size=0,
        dropout=_value(config, "resid_pdrop", 0.1),
        attention_dropout=_value(config, "attn_pdrop", 0.1),
        layer_norm_eps=_value(config, "layer_norm_epsilon", 1e-5),
        embedding_norm=False,
        final_norm=True,
        pad_token_id=_value(config, "pad_token_id", _value(config, "eos_token_id", 0)),
        **shared,
    )


def _encoder_spec(config: dict, source: str, family: str, shared: dict[str, Any]) -> TransformerSpec:
    """The spec of a BERT or RoBERTa ``config.json``; ``shared`` as for :func:`_gpt2_spec`."""
    if _value(config, "position_embedding_type", "absolute") != "absolute":
        raise _unsupported(source, f"position_embedding_type={config['position_embedding_type']!r}")
    pad = _value(config, "pad_token_id", 1 if family == "roberta" else 0)
    offset = pad + 1 if family == "roberta" else 0  # RoBERTa numbers positions from padding_idx + 1
    max_positions = config["max_position_embeddings"] - offset
    if max_positions <= 0:
        raise _unsupported(
            source, f"max_position_embeddings={config['max_position_embeddings']} with pad_token_id={pad}"
        )
    type_vocab = _value(config, "type_vocab_size", 2)
    return TransformerSpec(
        vocab_size=config["vocab_size"],
        n_layers=config["num_hidden_layers"],
        d_model=config["hidden_size"],
        n_heads=config["num_attention_heads"],
        d_ff=config["intermediate_size"],
        max_positions=max_positions,
        causal=False,
        norm="post",
        segment_vocab_size=0 if type_vocab == 1 else type_vocab,
        position_offset=offset,
        dropout=_value(config, "hidden_dropout_prob", 0.1),
        attention_dropout=_value(config, "attention_probs_dropout_prob", 0.1),
        layer_norm_eps=_value(config, "layer_norm_eps", 1e-12),
        embedding_norm=True,
        final_norm=False,
        pad_token_id=pad,
        **shared,
    )


def _check_exportable(spec: TransformerSpec, family: str, head_names: list[str]) -> None:
    """Refuse a spec or a head that a Hugging Face ``family`` model cannot express."""
    want = {
        "position": "learned",
        "causal": family == "gpt2",
        "norm": "pre" if family == "gpt2" else "post",
        "embedding_norm": family != "gpt2",
        "final_norm": family == "gpt2",
        "position_offset": spec.pad_token_id + 1 if family == "roberta" else 0,
    }
    if family == "gpt2":
        want["segment_vocab_size"] = 0
    wrong = [
        f"{key}={getattr(spec, key)!r} (needs {value!r})" for key, value in want.items() if getattr(spec, key) != value
    ]
    extra = [name for name in head_names if name not in HF_HEADS[family]]
    if family == "roberta" and "mlm" in head_names and spec.activation != "gelu":
        wrong.append(f"activation={spec.activation!r} (RoBERTa's MLM head always uses 'gelu')")
    if wrong or extra:
        raise UserError(
            f"this model cannot be exported as a Hugging Face {family} model: "
            + "; ".join(wrong + [f"head {name!r} has no {family} equivalent" for name in extra])
            + "."
        )


def hf_config_from_spec(
    spec: TransformerSpec, model_type: str, head_names: list[str], token_ids: Mapping[str, int] | None = None
) -> dict:
    """The ``config.json`` content of a Hugging Face model equivalent to ``spec`` with ``head_names``.

    Args:
        spec: the backbone spec.
        model_type: bert, roberta, xlm-roberta or gpt2.
        head_names: lmtrain heads to export; they choose ``architectures``.
        token_ids: optional role -> id (``bos``, ``eos``) from the tokenizer.
    Returns:
        A JSON-ready dict.
    Raises:
        UserError: the spec or heads have no equivalent in that Hugging Face architecture.
    """
    family = hf_family(model_type, "export")
    _check_exportable(spec, family, head_names)
    token_ids = dict(token_ids or {})
    arch = _ARCH_PREFIX[model_type] + {
        ("mlm", "nsp"): "ForPreTraining",
        ("mlm",): "ForMaskedLM",
        ("nsp",): "ForNextSentencePrediction",
        ("lm",): "LMHeadModel",
    }.get(tuple(sorted(head_names)), "Model")
    common = {
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": spec.vocab_size,
        "initializer_range": spec.init_std,
        "tie_word_embeddings": spec.tie_embeddings,
        "pad_token_id": spec.pad_token_id,
        "bos_token_id": token_ids.get("bos"),
        "eos_token_id": token_ids.get("eos"),
    }
    return {**common, **(_gpt2_config(spec) if family == "gpt2" else _encoder_config(spec))}


def _gpt2_config(spec: TransformerSpec) -> dict:
    """The GPT-2 keys of :func:`hf_config_from_spec`'s config.json."""
    return {
        "n_embd": spec.d_model,
        "n_layer": spec.n_layers,
        "n_head": spec.n_heads,
        "n_inner": spec.d_ff,
        "n_positions": spec.max_positions,
        "activation_function": _ACT_TO_HF[spec.activation],
        "resid_pdrop": spec.dropout,
        "embd_pdrop": spec.dropout,
        "attn_pdrop": spec.attention_dropout,
        "layer_norm_epsilon": spec.layer_norm_eps,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
    }


def _encoder_config(spec: TransformerSpec) -> dict:
    """The BERT / RoBERTa keys of :func:`hf_config_from_spec`'s config.json."""
    return {
        "hidden_size": spec.d_model,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "intermediate_size": spec.d_ff,
        "hidden_act": _ACT_TO_HF[spec.activation],
        "hidden_dropout_prob": spec.dropout,
        "attention_probs_dropout_prob": spec.attention_dropout,
        "max_position_embeddings": spec.max_positions + spec.position_offset,
        "type_vocab_size": spec.segment_vocab_size or 1,
        "layer_norm_eps": spec.layer_norm_eps,
        "position_embedding_type": "absolute",
        "is_decoder": False,
    }
