"""Tokenizers users already have: Hugging Face folders, Hub ids, ``tokenizer.json`` files.

A folder holds ``tokenizer.json`` (read as is), or the files of a slow tokenizer, converted here
with `tokenizers` the way ``transformers`` converts them: WordPiece ``vocab.txt`` (BERT) or
byte-level BPE ``vocab.json`` + ``merges.txt`` (GPT-2, RoBERTa). Roles (cls, sep, pad, mask, unk,
bos, eos) come from ``special_tokens_map.json`` / ``tokenizer_config.json`` when present, else
from the tokens the vocabulary has ([CLS] [SEP] ..., <s> </s> <pad> ..., or GPT-2's
<|endoftext|>). ``transformers`` is never imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

from lmtrain.data.tokenizer import TextTokenizer, add_post_processor, special_roles, train_tokenizer
from lmtrain.errors import UserError
from lmtrain.hub import resolve_source

_ROLE_KEYS = {
    "cls": "cls_token",
    "sep": "sep_token",
    "pad": "pad_token",
    "mask": "mask_token",
    "unk": "unk_token",
    "bos": "bos_token",
    "eos": "eos_token",
}
_CONVENTIONS = (
    {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]", "unk": "[UNK]"},
    {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "mask": "<mask>", "unk": "<unk>", "bos": "<s>", "eos": "</s>"},
    {"bos": "<|endoftext|>", "eos": "<|endoftext|>", "pad": "<|endoftext|>"},
)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}).") from None
    return data if isinstance(data, dict) else {}


def _declared_roles(folder: Path) -> dict[str, str]:
    roles: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the second wins
        data = _read_json(folder / name)
        for role, key in _ROLE_KEYS.items():
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                roles[role] = value
    return roles


def hf_tokenizer_roles(folder: Path, tokenizer: Tokenizer, fallback: dict[str, str] | None = None) -> dict[str, str]:
    """Role -> token of a Hugging Face tokenizer folder (only tokens the vocabulary has).

    Args:
        folder: the tokenizer folder (its declared roles come first).
        tokenizer: the folder's tokenizer.
        fallback: roles to fill in where the folder and the usual conventions name none
            (a tokenizer preset's), each kept only if the vocabulary has its token.
    """
    roles = {r: t for r, t in _declared_roles(folder).items() if tokenizer.token_to_id(t) is not None}
    for convention in (*_CONVENTIONS, fallback or {}):
        for role, token in convention.items():
            if role not in roles and tokenizer.token_to_id(token) is not None:
                roles[role] = token
    if "pad" not in roles and "eos" in roles:  # GPT-2 has no padding token: pad with end-of-text, masked out
        roles["pad"] = roles["eos"]
    return roles


def _wordpiece(folder: Path, config: dict[str, Any]) -> Tokenizer:
    """BERT's WordPiece from ``vocab.txt``, normalised as ``BertTokenizerFast`` does."""
    lowercase = bool(config.get("do_lower_case", True))
    unk = _declared_roles(folder).get("unk", "[UNK]")
    tokenizer = Tokenizer(
        models.WordPiece.from_file(str(folder / "vocab.txt"), unk_token=unk, max_input_chars_per_word=100)
    )
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=config.get("strip_accents"),
        lowercase=lowercase,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def _byte_level_bpe(folder: Path, config: dict[str, Any]) -> Tokenizer:
    """GPT-2's / RoBERTa's byte-level BPE from ``vocab.json`` + ``merges.txt``."""
    tokenizer = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(config.get("add_prefix_space", False)))
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _converted(folder: Path) -> Tokenizer | None:
    """The fast tokenizer of a folder's slow-tokenizer files, or None if it has none."""
    config = _read_json(folder / "tokenizer_config.json")
    try:
        if (folder / "vocab.txt").is_file():
            return _wordpiece(folder, config)
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            return _byte_level_bpe(folder, config)
    except Exception as error:  # the Rust readers raise plain Exceptions on malformed files
        raise UserError(
            f"{folder}: the vocabulary files do not read as a WordPiece vocab.txt or a BPE "
            f"vocab.json + merges.txt ({error})."
        ) from None
    return None


def load_hf_tokenizer(folder: str | Path, fallback_roles: dict[str, str] | None = None) -> TextTokenizer:
    """The tokenizer of a Hugging Face folder (truncation and padding switched off, as every :class:`TextTokenizer`).

    Args:
        folder: holds tokenizer.json, or vocab.txt (WordPiece), or vocab.json + merges.txt (byte-level BPE).
        fallback_roles: special-token roles to use where the folder names none (see :func:`hf_tokenizer_roles`).
    Raises:
        UserError: the folder has none of these files, or they do not read.
    """
    folder = Path(folder).expanduser()
    path = folder / "tokenizer.json"
    if path.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:
            raise UserError(f"{path} is not a `tokenizers` tokenizer.json ({error}).") from None
        return TextTokenizer(tokenizer, hf_tokenizer_roles(folder, tokenizer, fallback_roles), source=str(path))
    converted = _converted(folder)
    if converted is None:
        raise UserError(
            f"{folder} has no tokenizer: expected tokenizer.json, a WordPiece vocab.txt, or a "
            "byte-level BPE vocab.json + merges.txt, as save_pretrained writes them."
        )
    roles = hf_tokenizer_roles(folder, converted, fallback_roles)
    # special tokens are matched whole in text ("The [MASK] was hot"), never split by the pre-tokenizer;
    # RoBERTa's <mask> takes the space before it, as its own tokenizer does
    converted.add_special_tokens(
        [AddedToken(token, special=True, lstrip=token == "<mask>") for token in dict.fromkeys(roles.values())]
    )
    add_post_processor(converted, roles)
    return TextTokenizer(converted, roles, source=str(folder))


def load_tokenizer_source(name: str, roles: dict[str, str], key: str = "tokenizer.path") -> TextTokenizer:
    """The tokenizer ``name`` names: a tokenizer.json file, a tokenizer folder, or a Hugging Face Hub id.

    Args:
        name: a ``tokenizer.json`` path, a folder (see :func:`load_hf_tokenizer`) or a Hub id
            (``bert-base-uncased``, ``org/name@revision``; cached, else downloaded unless offline).
        roles: the tokenizer config's special-token roles: those of a tokenizer.json file, and the
            fallback for roles a folder does not name.
        key: the config key that gave ``name`` (for error messages).
    """
    path = resolve_source(name, key, tokenizer_only=True)
    if path.is_file():
        return TextTokenizer.from_file(path, roles)
    return load_hf_tokenizer(path, roles)


def configured_tokenizer(tok_cfg: Any, texts: list[str]) -> TextTokenizer:
    """``tokenizer.path``'s tokenizer (a file, folder or Hub id) if set, else one trained on ``texts``."""
    if tok_cfg.path:
        return load_tokenizer_source(tok_cfg.path, special_roles(tok_cfg))
    return train_tokenizer(texts, tok_cfg)


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
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "model_input_names": inputs,
        **tokens,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(tokens, indent=2) + "\n")
