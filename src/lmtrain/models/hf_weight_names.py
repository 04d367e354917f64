"""Hugging Face parameter names <-> lmtrain's, for BERT, RoBERTa and GPT-2 state dicts.

This is the only module that knows Hugging Face parameter names of the backbone and the
pretraining heads (:mod:`lmtrain.models.hf_task_heads` adds the fine-tuning heads).

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

import re
from collections.abc import Mapping
from typing import TypeVar

import torch

from lmtrain.errors import UserError
from lmtrain.models.hf_config_map import HF_HEADS, hf_family
from lmtrain.models.spec import TransformerSpec

_Value = TypeVar("_Value")  # what a state dict's names map to: tensors, or only their shapes

_PREFIX = {"bert": "bert.", "roberta": "roberta.", "gpt2": "transformer."}
_HEAD_ROOTS = ("cls.", "lm_head.")
_ALWAYS_IGNORED = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$|^h\.\d+\.attn\.(bias|masked_bias)$")
# task heads of *ForTokenClassification / *ForSequenceClassification / *ForQuestionAnswering: a backbone
# taken from such a model gets a new head of its own task, so these are left behind
_TASK_HEAD_ROOTS = ("classifier.", "qa_outputs.", "score.")

Pair = tuple[str, tuple[str, ...], str]


# one Transformer block's Linears and LayerNorms: (our name, HF name under the block[, weight kind])
_GPT2_BLOCK = (
    ("attn.qkv", "attn.c_attn", "t"),
    ("attn.out", "attn.c_proj", "t"),
    ("attn_norm", "ln_1", "copy"),
    ("ff.up", "mlp.c_fc", "t"),
    ("ff.down", "mlp.c_proj", "t"),
    ("ff_norm", "ln_2", "copy"),
)
_ENCODER_BLOCK = (
    ("attn.out", "attention.output.dense"),
    ("attn_norm", "attention.output.LayerNorm"),
    ("ff.up", "intermediate.dense"),
    ("ff.down", "output.dense"),
    ("ff_norm", "output.LayerNorm"),
)


def _pairs(spec: TransformerSpec, family: str, heads: list[str]) -> list[Pair]:
    """The name table of a ``family`` model of ``spec`` with ``heads`` (see the module docstring)."""
    return _gpt2_pairs(spec, heads) if family == "gpt2" else _encoder_pairs(spec, family, heads)


def _linear(ours: str, hf: str, weight_kind: str = "copy") -> list[Pair]:
    """The weight and bias entries of a Linear or a LayerNorm."""
    return [(f"{ours}.weight", (f"{hf}.weight",), weight_kind), (f"{ours}.bias", (f"{hf}.bias",), "copy")]


def _gpt2_pairs(spec: TransformerSpec, heads: list[str]) -> list[Pair]:
    """GPT-2's name table."""
    emb, token = "backbone.embeddings", "wte.weight"
    pairs: list[Pair] = [(f"{emb}.token.weight", (token,), "copy"), (f"{emb}.position.weight", ("wpe.weight",), "copy")]
    for i in range(spec.n_layers):
        for ours, hf, kind in _GPT2_BLOCK:
            pairs += _linear(f"backbone.blocks.{i}.{ours}", f"h.{i}.{hf}", kind)
    pairs += _linear("backbone.final_norm", "ln_f")
    if "lm" in heads:
        pairs.append(
            ("heads.lm.weight", (token,), "tied")
            if spec.tie_embeddings
            else ("heads.lm.weight", ("lm_head.weight",), "copy")
        )
    return pairs


def _encoder_pairs(spec: TransformerSpec, family: str, heads: list[str]) -> list[Pair]:
    """BERT's or RoBERTa's name table."""
    emb, token = "backbone.embeddings", "embeddings.word_embeddings.weight"
    pairs: list[Pair] = [(f"{emb}.token.weight", (token,), "copy")]
    position, token_type = "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"
    if spec.segment_vocab_size:
        pairs += [(f"{emb}.position.weight", (position,), "copy"), (f"{emb}.segment.weight", (token_type,), "copy")]
    else:
        pairs.append((f"{emb}.position.weight", (position, token_type), "fold"))
    pairs += _linear(f"{emb}.norm", "embeddings.LayerNorm")
    for i in range(spec.n_layers):
        b, h = f"backbone.blocks.{i}", f"encoder.layer.{i}"
        for kind in ("weight", "bias"):
            qkv = tuple(f"{h}.attention.self.{name}.{kind}" for name in ("query", "key", "value"))
            pairs.append((f"{b}.attn.qkv.{kind}", qkv, "qkv"))
        for ours, hf in _ENCODER_BLOCK:
            pairs += _linear(f"{b}.{ours}", f"{h}.{hf}")
    return pairs + _encoder_head_pairs(spec, family, heads, token)


def _encoder_head_pairs(spec: TransformerSpec, family: str, heads: list[str], token: str) -> list[Pair]:
    """The masked LM and next-sentence heads of BERT's or RoBERTa's name table."""
    pairs: list[Pair] = []
    if "mlm" in heads:
        root, norm = (
            ("cls.predictions", "cls.predictions.transform.LayerNorm")
            if family == "bert"
            else ("lm_head", "lm_head.layer_norm")
        )
        pairs += _linear("heads.mlm.dense", f"{root}.transform.dense" if family == "bert" else f"{root}.dense")
        pairs += _linear("heads.mlm.norm", norm)
        pairs.append(("heads.mlm.bias", (f"{root}.decoder.bias", f"{root}.bias"), "alias"))
        pairs.append(
            ("heads.mlm.weight", (token,), "tied")
            if spec.tie_embeddings
            else ("heads.mlm.weight", (f"{root}.decoder.weight",), "copy")
        )
    if "nsp" in heads:
        pairs += _linear("heads.nsp.dense", "pooler.dense") + _linear("heads.nsp.output", "cls.seq_relationship")
    return pairs


def normalise_hf_names(state_dict: Mapping[str, _Value], family: str) -> dict[str, _Value]:
    """``state_dict`` without the base-model prefix, old TF-style LayerNorm gamma/beta renamed."""
    prefix, out = _PREFIX[family], {}
    for name, tensor in state_dict.items():
        name = name[len(prefix) :] if name.startswith(prefix) else name
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
    family = hf_family(model_type, "state dict")
    names = set(normalise_hf_names(state_dict, family))
    if family == "gpt2":
        return ["lm"] if tie_embeddings or "lm_head.weight" in names else []
    root = "cls.predictions." if family == "bert" else "lm_head."
    heads = ["mlm"] if any(n.startswith(root) for n in names) else []
    return heads + (["nsp"] if family == "bert" and "cls.seq_relationship.weight" in names else [])


def convert_from_hf(
    state_dict: Mapping[str, torch.Tensor], spec: TransformerSpec, family: str, heads: list[str]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Convert Hugging Face weights; return (our state dict, missing HF names, unexpected HF names)."""
    hf = normalise_hf_names(state_dict, family)
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
    ignored = (
        {"cls.predictions.decoder.weight", "lm_head.decoder.weight", "lm_head.weight"} if spec.tie_embeddings else set()
    )
    unexpected = [
        n
        for n in hf
        if n not in used
        and n not in ignored
        and not _ALWAYS_IGNORED.search(n)
        and not n.startswith(_TASK_HEAD_ROOTS)
        and not (n.startswith("pooler.") and "nsp" not in heads)
    ]
    return ours, missing, unexpected


def weights_mismatch_error(source: str, model_type: str, missing: list[str], unexpected: list[str]) -> UserError:
    """The error for weights that do not fit the config: the ``missing`` and ``unexpected`` names (8 of each)."""

    def listing(names: list[str]) -> str:
        return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")

    parts = ([f"missing {listing(missing)}"] if missing else []) + (
        [f"unexpected {listing(unexpected)}"] if unexpected else []
    )
    return UserError(
        f"{source}: the weights do not fit a {model_type} model as described by its config: "
        f"{'; '.join(parts)}. Check that config.json and the weights belong to the same model."
    )


def hf_to_lmtrain(
    state_dict: Mapping[str, torch.Tensor], spec: TransformerSpec, model_type: str
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
    family = hf_family(model_type, "state dict")
    heads = hf_head_names(state_dict, model_type, spec.tie_embeddings)
    ours, missing, unexpected = convert_from_hf(state_dict, spec, family, heads)
    if missing or unexpected:
        raise weights_mismatch_error("state dict", model_type, missing, unexpected)
    return ours


def lmtrain_to_hf(
    state_dict: Mapping[str, torch.Tensor], spec: TransformerSpec, model_type: str
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
    family = hf_family(model_type, "export")
    heads = [name for name in HF_HEADS[family] if any(k.startswith(f"heads.{name}.") for k in state_dict)]
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
