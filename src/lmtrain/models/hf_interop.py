"""Hugging Face interop: read and write ``save_pretrained`` folders of BERT, RoBERTa and GPT-2.

This is the only module that knows Hugging Face parameter names. It needs json, torch and
safetensors; ``transformers`` is never imported.

One table of ``(our name, HF names, kind)`` entries per architecture (:func:`_pairs`) drives both
directions. HF names in the table are "normalised": backbone names without the ``bert.`` /
``roberta.`` / ``transformer.`` prefix, head names (``cls.``, ``lm_head``) as they are. Kinds:

* ``copy``: same tensor; ``t``: transposed (GPT-2's Conv1D stores weights as (in, out));
* ``qkv``: BERT's separate query/key/value, concatenated into our fused ``qkv`` along dim 0;
* ``fold``: a single token-type row (type_vocab_size 1, RoBERTa) added to every position row;
  exact, because every token then has type 0; exported back as a zero token-type row;
* ``tied``: our tied head weight, read from the token embedding, not written on export;
* ``alias``: one tensor stored under several HF names (decoder bias); read from the first present.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from lmtrain.files.atomic import follow_umask
from lmtrain.errors import UserError
from lmtrain.models.hf_config_checks import check_config_fits_weights, check_config_values, read_hf_config
from lmtrain.models.hf_weight_files import read_checked_weights
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "gpt2")
_FAMILY = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "gpt2": "gpt2"}
_PREFIX = {"bert": "bert.", "roberta": "roberta.", "gpt2": "transformer."}
_HEAD_ROOTS = ("cls.", "lm_head.")
_ARCH_PREFIX = {"bert": "Bert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta", "gpt2": "GPT2"}
_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
_HEADS = {"bert": ("mlm", "nsp"), "roberta": ("mlm",), "gpt2": ("lm",)}
_ALWAYS_IGNORED = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$|^h\.\d+\.attn\.(bias|masked_bias)$")
# task heads of *ForTokenClassification / *ForSequenceClassification / *ForQuestionAnswering: a backbone
# taken from such a model gets a new head of its own task, so these are left behind
_TASK_HEAD_ROOTS = ("classifier.", "qa_outputs.", "score.")

Pair = tuple[str, tuple[str, ...], str]


def _family(model_type: str, source: str) -> str:
    if not isinstance(model_type, str) or model_type not in _FAMILY:
        raise UserError(f"{source}: model_type {model_type!r} is not supported; lmtrain reads and writes "
                        f"Hugging Face models of type {', '.join(SUPPORTED_MODEL_TYPES)}.")
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
    family = _family(config.get("model_type"), source)

    def get(key, default=None):
        return config[key] if config.get(key) is not None else default

    def unsupported(what: str) -> UserError:
        return UserError(f"{source}: {what} is not supported by lmtrain's Transformer backbone.")

    if config.get("add_cross_attention") or (family != "gpt2" and config.get("is_decoder")):
        raise unsupported("a decoder with cross-attention or is_decoder=true")
    act_key = "activation_function" if family == "gpt2" else "hidden_act"
    activation = _ACT_FROM_HF.get(get(act_key, "gelu_new" if family == "gpt2" else "gelu"))
    if activation is None:
        raise unsupported(f"{act_key}={config[act_key]!r} (supported: {', '.join(_ACT_FROM_HF)})")
    tie = bool(get("tie_word_embeddings", True))
    if family == "gpt2":
        if config.get("scale_attn_by_inverse_layer_idx") or not get("scale_attn_weights", True):
            raise unsupported("attention scaling other than 1/sqrt(head_dim)")
        d_model = config["n_embd"]
        pad = get("pad_token_id", get("eos_token_id", 0))
        spec = TransformerSpec(
            vocab_size=config["vocab_size"], n_layers=config["n_layer"], d_model=d_model,
            n_heads=config["n_head"], d_ff=get("n_inner", 4 * d_model), max_positions=config["n_positions"],
            causal=True, norm="pre", segment_vocab_size=0, activation=activation,
            dropout=get("resid_pdrop", 0.1), attention_dropout=get("attn_pdrop", 0.1),
            layer_norm_eps=get("layer_norm_epsilon", 1e-5), embedding_norm=False, final_norm=True,
            tie_embeddings=tie, init_std=get("initializer_range", 0.02), pad_token_id=pad)
        return spec, list(_HEADS[family])
    if get("position_embedding_type", "absolute") != "absolute":
        raise unsupported(f"position_embedding_type={config['position_embedding_type']!r}")
    pad = get("pad_token_id", 1 if family == "roberta" else 0)
    offset = pad + 1 if family == "roberta" else 0  # RoBERTa numbers positions from padding_idx + 1
    max_positions = config["max_position_embeddings"] - offset
    if max_positions <= 0:
        raise unsupported(f"max_position_embeddings={config['max_position_embeddings']} with pad_token_id={pad}")
    type_vocab = get("type_vocab_size", 2)
    spec = TransformerSpec(
        vocab_size=config["vocab_size"], n_layers=config["num_hidden_layers"], d_model=config["hidden_size"],
        n_heads=config["num_attention_heads"], d_ff=config["intermediate_size"], max_positions=max_positions,
        causal=False, norm="post", segment_vocab_size=0 if type_vocab == 1 else type_vocab,
        position_offset=offset, activation=activation, dropout=get("hidden_dropout_prob", 0.1),
        attention_dropout=get("attention_probs_dropout_prob", 0.1), layer_norm_eps=get("layer_norm_eps", 1e-12),
        embedding_norm=True, final_norm=False, tie_embeddings=tie, init_std=get("initializer_range", 0.02),
        pad_token_id=pad)
    return spec, list(_HEADS[family])


def _pairs(spec: TransformerSpec, family: str, heads: list[str]) -> list[Pair]:
    """The name table of a ``family`` model of ``spec`` with ``heads`` (see the module docstring)."""
    pairs: list[Pair] = []

    def add(ours: str, hf: str, weight_kind: str = "copy") -> None:  # a Linear or a LayerNorm
        pairs.append((f"{ours}.weight", (f"{hf}.weight",), weight_kind))
        pairs.append((f"{ours}.bias", (f"{hf}.bias",), "copy"))

    emb = "backbone.embeddings"
    if family == "gpt2":
        token = "wte.weight"
        pairs += [(f"{emb}.token.weight", (token,), "copy"), (f"{emb}.position.weight", ("wpe.weight",), "copy")]
        for i in range(spec.n_layers):
            b, h = f"backbone.blocks.{i}", f"h.{i}"
            add(f"{b}.attn.qkv", f"{h}.attn.c_attn", "t")
            add(f"{b}.attn.out", f"{h}.attn.c_proj", "t")
            add(f"{b}.attn_norm", f"{h}.ln_1")
            add(f"{b}.ff.up", f"{h}.mlp.c_fc", "t")
            add(f"{b}.ff.down", f"{h}.mlp.c_proj", "t")
            add(f"{b}.ff_norm", f"{h}.ln_2")
        add("backbone.final_norm", "ln_f")
        if "lm" in heads:
            pairs.append(("heads.lm.weight", (token,), "tied") if spec.tie_embeddings
                         else ("heads.lm.weight", ("lm_head.weight",), "copy"))
        return pairs
    token = "embeddings.word_embeddings.weight"
    pairs.append((f"{emb}.token.weight", (token,), "copy"))
    position, token_type = "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"
    if spec.segment_vocab_size:
        pairs += [(f"{emb}.position.weight", (position,), "copy"), (f"{emb}.segment.weight", (token_type,), "copy")]
    else:
        pairs.append((f"{emb}.position.weight", (position, token_type), "fold"))
    add(f"{emb}.norm", "embeddings.LayerNorm")
    for i in range(spec.n_layers):
        b, h = f"backbone.blocks.{i}", f"encoder.layer.{i}"
        for kind in ("weight", "bias"):
            qkv = tuple(f"{h}.attention.self.{name}.{kind}" for name in ("query", "key", "value"))
            pairs.append((f"{b}.attn.qkv.{kind}", qkv, "qkv"))
        add(f"{b}.attn.out", f"{h}.attention.output.dense")
        add(f"{b}.attn_norm", f"{h}.attention.output.LayerNorm")
        add(f"{b}.ff.up", f"{h}.intermediate.dense")
        add(f"{b}.ff.down", f"{h}.output.dense")
        add(f"{b}.ff_norm", f"{h}.output.LayerNorm")
    if "mlm" in heads:
        root, norm = ("cls.predictions", "cls.predictions.transform.LayerNorm") if family == "bert" \
            else ("lm_head", "lm_head.layer_norm")
        add("heads.mlm.dense", f"{root}.transform.dense" if family == "bert" else f"{root}.dense")
        add("heads.mlm.norm", norm)
        pairs.append(("heads.mlm.bias", (f"{root}.decoder.bias", f"{root}.bias"), "alias"))
        pairs.append(("heads.mlm.weight", (token,), "tied") if spec.tie_embeddings
                     else ("heads.mlm.weight", (f"{root}.decoder.weight",), "copy"))
    if "nsp" in heads:
        add("heads.nsp.dense", "pooler.dense")
        add("heads.nsp.output", "cls.seq_relationship")
    return pairs


def _normalise(state_dict: Mapping[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """Strip the base-model prefix and rename old TF-style LayerNorm gamma/beta."""
    prefix, out = _PREFIX[family], {}
    for name, tensor in state_dict.items():
        name = name[len(prefix):] if name.startswith(prefix) else name
        out[re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))] = tensor
    return out


def hf_head_names(state_dict: Mapping[str, torch.Tensor], model_type: str, tie_embeddings: bool = True) -> list[str]:
    """The lmtrain heads a Hugging Face state dict carries weights for.

    Args:
        state_dict: HF parameter names (prefixed or bare) -> tensors.
        model_type: HF model_type (bert, roberta, xlm-roberta, gpt2).
        tie_embeddings: whether the output projection is tied (GPT-2's tied LM head has no weights).
    Returns:
        Subset of mlm/nsp (bert), mlm (roberta), lm (gpt2).
    """
    family = _family(model_type, "state dict")
    names = set(_normalise(state_dict, family))
    if family == "gpt2":
        return ["lm"] if tie_embeddings or "lm_head.weight" in names else []
    root = "cls.predictions." if family == "bert" else "lm_head."
    heads = ["mlm"] if any(n.startswith(root) for n in names) else []
    return heads + (["nsp"] if family == "bert" and "cls.seq_relationship.weight" in names else [])


def _from_hf(state_dict: Mapping[str, torch.Tensor], spec: TransformerSpec, family: str, heads: list[str]
             ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Convert; return (our state dict, missing HF names, unexpected HF names)."""
    hf = _normalise(state_dict, family)
    ours, used, missing = {}, set(), []
    for name, hf_names, kind in _pairs(spec, family, heads):
        present = [n for n in hf_names if n in hf]
        if kind == "alias" and present:
            hf_names = (present[0],)
        elif len(present) < len(hf_names):
            missing += [n for n in hf_names if n not in hf]
            continue
        used.update(present)
        tensors = [hf[n] for n in hf_names]
        if kind == "t":
            ours[name] = tensors[0].t().contiguous()
        elif kind == "qkv":
            ours[name] = torch.cat(tensors, dim=0)  # 3 x (D, ...) -> (3D, ...), q then k then v
        elif kind == "fold":
            ours[name] = tensors[0] + tensors[1][0]  # (P, D) + (D,): type 0 folded into every position
        else:
            ours[name] = tensors[0]
    ignored = {"cls.predictions.decoder.weight", "lm_head.decoder.weight", "lm_head.weight"} \
        if spec.tie_embeddings else set()
    unexpected = [n for n in hf if n not in used and n not in ignored and not _ALWAYS_IGNORED.search(n)
                  and not n.startswith(_TASK_HEAD_ROOTS)
                  and not (n.startswith("pooler.") and "nsp" not in heads)]
    return ours, missing, unexpected


def _mismatch_error(source: str, model_type: str, missing: list[str], unexpected: list[str]) -> UserError:
    def listing(names: list[str]) -> str:
        return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")

    parts = ([f"missing {listing(missing)}"] if missing else []) + \
        ([f"unexpected {listing(unexpected)}"] if unexpected else [])
    return UserError(f"{source}: the weights do not fit a {model_type} model as described by its config: "
                     f"{'; '.join(parts)}. Check that config.json and the weights belong to the same model.")


def hf_to_lmtrain(state_dict: Mapping[str, torch.Tensor], spec: TransformerSpec, model_type: str
                  ) -> dict[str, torch.Tensor]:
    """Rename (and fuse, transpose, fold) Hugging Face weights into a :class:`LanguageModel` state dict.

    Args:
        state_dict: HF names (with or without the bert./roberta./transformer. prefix) -> tensors.
        spec: the spec from :func:`spec_from_hf_config` for the same model.
        model_type: HF model_type.
    Returns:
        lmtrain names -> tensors, for the heads found (see :func:`hf_head_names`); the head names
        are the second components of its ``heads.*`` keys.
    Raises:
        UserError: backbone or head weights missing, or weights no lmtrain parameter takes.
    """
    family = _family(model_type, "state dict")
    heads = hf_head_names(state_dict, model_type, spec.tie_embeddings)
    ours, missing, unexpected = _from_hf(state_dict, spec, family, heads)
    if missing or unexpected:
        raise _mismatch_error("state dict", model_type, missing, unexpected)
    return ours


def _check_exportable(spec: TransformerSpec, family: str, head_names: list[str]) -> None:
    want = {"position": "learned", "causal": family == "gpt2", "norm": "pre" if family == "gpt2" else "post",
            "embedding_norm": family != "gpt2", "final_norm": family == "gpt2",
            "position_offset": spec.pad_token_id + 1 if family == "roberta" else 0}
    if family == "gpt2":
        want["segment_vocab_size"] = 0
    wrong = [f"{key}={getattr(spec, key)!r} (needs {value!r})" for key, value in want.items()
             if getattr(spec, key) != value]
    extra = [name for name in head_names if name not in _HEADS[family]]
    if family == "roberta" and "mlm" in head_names and spec.activation != "gelu":
        wrong.append(f"activation={spec.activation!r} (RoBERTa's MLM head always uses 'gelu')")
    if wrong or extra:
        raise UserError(f"this model cannot be exported as a Hugging Face {family} model: "
                        + "; ".join(wrong + [f"head {name!r} has no {family} equivalent" for name in extra]) + ".")


def hf_config_from_spec(spec: TransformerSpec, model_type: str, head_names: list[str],
                        token_ids: Mapping[str, int] | None = None) -> dict:
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
    family = _family(model_type, "export")
    _check_exportable(spec, family, head_names)
    token_ids = dict(token_ids or {})
    arch = _ARCH_PREFIX[model_type] + {
        ("mlm", "nsp"): "ForPreTraining", ("mlm",): "ForMaskedLM", ("nsp",): "ForNextSentencePrediction",
        ("lm",): "LMHeadModel"}.get(tuple(sorted(head_names)), "Model")
    common = {"architectures": [arch], "model_type": model_type, "vocab_size": spec.vocab_size,
              "initializer_range": spec.init_std, "tie_word_embeddings": spec.tie_embeddings,
              "pad_token_id": spec.pad_token_id, "bos_token_id": token_ids.get("bos"),
              "eos_token_id": token_ids.get("eos")}
    if family == "gpt2":
        return {**common, "n_embd": spec.d_model, "n_layer": spec.n_layers, "n_head": spec.n_heads,
                "n_inner": spec.d_ff, "n_positions": spec.max_positions,
                "activation_function": _ACT_TO_HF[spec.activation], "resid_pdrop": spec.dropout,
                "embd_pdrop": spec.dropout, "attn_pdrop": spec.attention_dropout,
                "layer_norm_epsilon": spec.layer_norm_eps, "scale_attn_weights": True,
                "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False}
    return {**common, "hidden_size": spec.d_model, "num_hidden_layers": spec.n_layers,
            "num_attention_heads": spec.n_heads, "intermediate_size": spec.d_ff,
            "hidden_act": _ACT_TO_HF[spec.activation], "hidden_dropout_prob": spec.dropout,
            "attention_probs_dropout_prob": spec.attention_dropout,
            "max_position_embeddings": spec.max_positions + spec.position_offset,
            "type_vocab_size": spec.segment_vocab_size or 1, "layer_norm_eps": spec.layer_norm_eps,
            "position_embedding_type": "absolute", "is_decoder": False}


def lmtrain_to_hf(state_dict: Mapping[str, torch.Tensor], spec: TransformerSpec, model_type: str
                  ) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_to_lmtrain`: Hugging Face names, each tensor its own contiguous copy.

    Args:
        state_dict: a :class:`LanguageModel` state dict; its ``heads.*`` keys say which heads to write.
        spec: the model's spec.
        model_type: bert, roberta, xlm-roberta or gpt2.
    Returns:
        HF names (with the base-model prefix, as ``*For*`` models save them) -> tensors, safe for
        safetensors: tied decoder weights are left out, no two entries share memory.
    """
    family = _family(model_type, "export")
    heads = [name for name in _HEADS[family] if any(k.startswith(f"heads.{name}.") for k in state_dict)]
    out: dict[str, torch.Tensor] = {}

    def put(hf_name: str, tensor: torch.Tensor) -> None:
        full = hf_name if hf_name.startswith(_HEAD_ROOTS) else _PREFIX[family] + hf_name
        out[full] = tensor.detach().cpu().clone().contiguous()

    for name, hf_names, kind in _pairs(spec, family, heads):
        tensor = state_dict[name]
        if kind == "t":
            put(hf_names[0], tensor.t())
        elif kind == "qkv":
            for hf_name, part in zip(hf_names, tensor.chunk(3, dim=0)):  # (3D, ...) -> 3 x (D, ...)
                put(hf_name, part)
        elif kind == "fold":
            put(hf_names[0], tensor)
            put(hf_names[1], torch.zeros_like(tensor[:1]))  # (1, D) token type 0 contributes nothing
        elif kind == "alias":
            for hf_name in hf_names:
                put(hf_name, tensor)
        elif kind == "copy":
            put(hf_names[0], tensor)
    return out


def load_hf_folder(folder: str | Path) -> LanguageModel:
    """Build a :class:`LanguageModel` from a Hugging Face ``save_pretrained`` folder.

    Args:
        folder: holds config.json and model.safetensors (or shards with an index, or pytorch_model.bin).
    Returns:
        The model in eval mode, with the heads whose weights the folder has.
    Raises:
        UserError: a missing file, an unsupported model, or weights that do not fill every parameter.
    """
    folder = Path(folder).expanduser()
    config_path, config = folder / "config.json", read_hf_config(folder)
    family = _family(config.get("model_type"), str(config_path))
    check_config_values(config, family, str(config_path))
    try:
        spec, _ = spec_from_hf_config(config, source=str(config_path))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{config_path} lacks or mistypes a setting its model needs ({type(error).__name__}: "
                        f"{error}); it is not a complete Hugging Face config.json. Write the folder again with "
                        "save_pretrained.") from None
    model_type = config["model_type"]

    def check(shapes: dict[str, tuple[int, ...]], weights: str) -> None:
        check_config_fits_weights(config, family, _normalise(shapes, family), str(config_path), weights)

    weights = read_checked_weights(folder, check)
    heads = hf_head_names(weights, model_type, spec.tie_embeddings)
    if family == "roberta" and "mlm" in heads and spec.activation != "gelu":
        raise UserError(f"{config_path}: hidden_act={config.get('hidden_act')!r} differs from the 'gelu' "
                        "that RoBERTa's MLM head always uses; lmtrain's MLM head cannot express that.")
    try:
        converted, missing, unexpected = _from_hf(weights, spec, family, heads)
        if missing or unexpected:  # said before building a model of the config's size
            raise _mismatch_error(str(folder), model_type, missing, unexpected)
        model = LanguageModel(spec, heads)
        result = model.load_state_dict(converted, strict=False)
    except RuntimeError as error:  # a tensor of another shape than the config's (one layer differing, say)
        reason = " ".join(str(error).split())[:300]
        raise UserError(f"{folder}: the weights do not fit a {model_type} model as described by its config "
                        f"({reason}). Check that config.json and the weights belong to the same model.") from None
    if result.missing_keys or result.unexpected_keys:
        raise _mismatch_error(str(folder), model_type, list(result.missing_keys), list(result.unexpected_keys))
    return model.eval()


def export_hf_folder(model: LanguageModel, model_type: str, out_dir: str | Path,
                     tokenizer_json: str | Path | None = None, token_ids: Mapping[str, int] | None = None) -> Path:
    """Write ``model`` as a Hugging Face folder that ``AutoModelFor*.from_pretrained`` loads.

    Args:
        model: the lmtrain model; its heads choose the architecture (see :func:`hf_config_from_spec`).
        model_type: bert, roberta, xlm-roberta or gpt2.
        out_dir: folder to create or overwrite files in.
        tokenizer_json: a tokenizer.json to copy alongside, or None.
        token_ids: optional role -> id (``bos``, ``eos``) for config.json.
    Returns:
        ``out_dir`` as a Path, holding config.json, model.safetensors (and tokenizer.json).
    Raises:
        UserError: the model has no equivalent Hugging Face architecture, or tokenizer_json is missing.
    """
    config = hf_config_from_spec(model.spec, model_type, model.head_names, token_ids)
    tensors = lmtrain_to_hf(model.state_dict(), model.spec, model_type)
    return write_hf_folder(out_dir, config, tensors, tokenizer_json)


def write_hf_folder(out_dir: str | Path, config: dict, tensors: dict[str, torch.Tensor],
                    tokenizer_json: Path | None) -> Path:
    """Write ``config.json``, ``model.safetensors`` (and a copy of ``tokenizer_json``) into ``out_dir``.

    Raises:
        UserError: ``tokenizer_json`` is given but missing.
    """
    out_dir = Path(out_dir).expanduser()
    if tokenizer_json is not None and not Path(tokenizer_json).is_file():
        raise UserError(f"tokenizer file {tokenizer_json} does not exist; pass the run's tokenizer.json or none.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_json is not None:
        shutil.copyfile(tokenizer_json, out_dir / "tokenizer.json")
    follow_umask(out_dir / "model.safetensors")  # safetensors writes 0600: teammates could not load it
    return out_dir
