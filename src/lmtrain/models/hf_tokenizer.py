"""Hugging Face tokenizer folders: ``tokenizer.json`` plus the special-token roles lmtrain needs.

Roles (cls, sep, pad, mask, unk, bos, eos) come from ``special_tokens_map.json`` /
``tokenizer_config.json`` when present, else from the tokens the vocabulary has ([CLS] [SEP] ...,
<s> </s> <pad> ..., or GPT-2's <|endoftext|>). ``transformers`` is never imported.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError

_ROLE_KEYS = {"cls": "cls_token", "sep": "sep_token", "pad": "pad_token", "mask": "mask_token",
              "unk": "unk_token", "bos": "bos_token", "eos": "eos_token"}
_CONVENTIONS = (
    {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]", "unk": "[UNK]"},
    {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "mask": "<mask>", "unk": "<unk>", "bos": "<s>", "eos": "</s>"},
    {"bos": "<|endoftext|>", "eos": "<|endoftext|>", "pad": "<|endoftext|>"},
)


def _declared_roles(folder: Path) -> dict[str, str]:
    roles: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the second wins
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not valid JSON ({error}).") from None
        for role, key in _ROLE_KEYS.items():
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                roles[role] = value
    return roles


def hf_tokenizer_roles(folder: Path, tokenizer: Tokenizer) -> dict[str, str]:
    """Role -> token of a Hugging Face tokenizer folder (only tokens the vocabulary has)."""
    roles = {r: t for r, t in _declared_roles(folder).items() if tokenizer.token_to_id(t) is not None}
    for convention in _CONVENTIONS:
        for role, token in convention.items():
            if role not in roles and tokenizer.token_to_id(token) is not None:
                roles[role] = token
    if "pad" not in roles and "eos" in roles:  # GPT-2 has no padding token: pad with end-of-text, masked out
        roles["pad"] = roles["eos"]
    return roles


def load_hf_tokenizer(folder: str | Path) -> TextTokenizer:
    """The fast tokenizer of a Hugging Face folder, with truncation and padding switched off.

    Raises:
        UserError: the folder has no tokenizer.json (lmtrain reads only the fast-tokenizer file).
    """
    folder = Path(folder).expanduser()
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"{folder} has no tokenizer.json: lmtrain reads the fast-tokenizer file that "
                        "`save_pretrained` writes for fast tokenizers; save one with "
                        "AutoTokenizer.from_pretrained(...).save_pretrained(folder).")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:
        raise UserError(f"{path} is not a `tokenizers` tokenizer.json ({error}).") from None
    # Saved tokenizers may pad or cut every text to a fixed length; lmtrain pads and windows itself.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return TextTokenizer(tokenizer, hf_tokenizer_roles(folder, tokenizer), source=str(path))


def write_hf_tokenizer_files(out_dir: Path, roles: dict[str, str], max_length: int, token_types: bool) -> None:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` so AutoTokenizer loads ``tokenizer.json``.

    Args:
        out_dir: the exported folder (holding tokenizer.json).
        roles: special-token roles.
        max_length: the model's positions.
        token_types: the model has segment embeddings (the tokenizer then returns token_type_ids).
    """
    tokens = {_ROLE_KEYS[role]: token for role, token in roles.items() if role in _ROLE_KEYS}
    inputs = ["input_ids", *(["token_type_ids"] if token_types else []), "attention_mask"]
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "model_input_names": inputs, **tokens}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(tokens, indent=2) + "\n")
