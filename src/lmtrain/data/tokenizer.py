"""Tokenizers trained with `tokenizers` (WordPiece for BERT, byte-level BPE for GPT-2 / RoBERTa).

`TextTokenizer` wraps a `tokenizers.Tokenizer` together with the ids of its special-token roles
(pad, unk, cls, sep, mask, bos, eos), which the data pipeline and objectives need.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from lmtrain.config.training import TokenizerConfig
from lmtrain.data.cache_lock import cache_lock
from lmtrain.data.cache_room import cache_full, no_room
from lmtrain.data.long_words import MAX_PRETOKEN_CHARS, LongWordCount, bound_pre_tokens
from lmtrain.errors import UserError
from lmtrain.files.atomic import write_text


def encode_ids_only(tokenizer: Tokenizer, inputs: list[Any], is_pretokenized: bool = False) -> list[Any]:
    """``tokenizer.encode_batch`` of ``inputs`` without special tokens, for callers that read only ``ids``.

    `tokenizers` 0.20 and later have ``encode_batch_fast``: the same ids without the character offsets
    (nor word ids), about a fifth less time on short sentences; older releases encode in full.
    """
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    return encode(inputs, is_pretokenized=is_pretokenized, add_special_tokens=False)


class TextTokenizer:
    """A fast tokenizer plus the ids of its special-token roles.

    Args:
        tokenizer: the underlying `tokenizers.Tokenizer`.
        roles: role -> token string (pad, unk, cls, sep, mask, bos, eos; any subset).
        source: where it came from, for error messages.
    """

    def __init__(self, tokenizer: Tokenizer, roles: dict[str, str], source: str = "tokenizer"):
        # a saved tokenizer.json may pad or cut every text to a fixed length (Hugging Face's MiniLM: 128);
        # lmtrain pads, packs and windows itself, and a cut would drop the rest of a document unsaid
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.roles = dict(roles)
        self.ids: dict[str, int] = {}
        for role, token in self.roles.items():
            token_id = tokenizer.token_to_id(token)
            if token_id is None:
                raise UserError(
                    f"{source} has no token '{token}' for the {role} role; set "
                    f"tokenizer.special_tokens.{role} to a token of its vocabulary."
                )
            self.ids[role] = token_id

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def special_ids(self) -> list[int]:
        """Ids of every special token (never masked, never predicted)."""
        return sorted(set(self.ids.values()))

    def id(self, role: str) -> int:
        """Id of the special token with ``role``; UserError if the tokenizer has none."""
        if role not in self.ids:
            raise UserError(
                f"the tokenizer has no '{role}' token, which this model needs; set tokenizer.special_tokens.{role}."
            )
        return self.ids[role]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens (batched, parallel in Rust)."""
        return [e.ids for e in encode_ids_only(self.tokenizer, texts)]

    def encode_words(self, texts: list[str]) -> list[tuple[list[int], list[int | None]]]:
        """Ids and word ids (index of the word each token came from) of each text."""
        return [(e.ids, e.word_ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` (atomically, never through a link: :func:`lmtrain.files.atomic.write_text`)."""
        write_text(path, self.tokenizer.to_str(pretty=True))

    def to_str(self) -> str:
        """The ``tokenizer.json`` text (what rank 0 sends the other ranks of a job)."""
        return self.tokenizer.to_str()

    @classmethod
    def from_str(cls, text: str, roles: dict[str, str], source: str = "tokenizer") -> TextTokenizer:
        """The tokenizer of a ``tokenizer.json`` text, with ``roles``."""
        return cls(Tokenizer.from_str(text), roles, source=source)

    @classmethod
    def from_file(cls, path: str | Path, roles: dict[str, str]) -> TextTokenizer:
        """Load a ``tokenizer.json``; UserError if it is missing or not a tokenizer file."""
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.exists():
            raise UserError(
                f"tokenizer file {path} does not exist; give the path of a tokenizer.json "
                "(tokenizer.path=...) or leave tokenizer.path unset to train one."
            )
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:
            raise UserError(f"{path} is not a `tokenizers` tokenizer.json ({error}).") from None
        return cls(tokenizer, roles, source=str(path))


# Special-token roles used when a tokenizer config names none.
DEFAULT_ROLES: dict[str, dict[str, str]] = {
    "wordpiece": {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"},
    "bpe": {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>", "bos": "<s>", "eos": "</s>"},
}


def special_roles(tok_cfg: TokenizerConfig) -> dict[str, str]:
    """The role -> token map of a tokenizer config (its kind's defaults when it names none)."""
    return dict(tok_cfg.special_tokens) or dict(DEFAULT_ROLES.get(tok_cfg.kind, {}))


def _ordered_specials(roles: dict[str, str]) -> list[str]:
    seen: list[str] = []
    for token in roles.values():
        if token not in seen:
            seen.append(token)
    return seen


def build_untrained(kind: str, lowercase: bool, roles: dict[str, str]) -> tuple[Tokenizer, Any]:
    """An empty tokenizer of ``kind`` and its trainer factory (called with vocab_size, min_frequency)."""
    specials = _ordered_specials(roles)
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=roles.get("unk", "[UNK]")))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()

        def make_trainer(vocab_size: int, min_frequency: int):
            return trainers.WordPieceTrainer(
                vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
            )
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        if lowercase:
            tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()

        def make_trainer(vocab_size: int, min_frequency: int):
            return trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                special_tokens=specials,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            )
    else:
        raise UserError(f"tokenizer.kind={kind} is not supported; use wordpiece or bpe.")
    return tokenizer, make_trainer


def add_post_processor(tokenizer: Tokenizer, roles: dict[str, str]) -> None:
    """Let `encode(..., add_special_tokens=True)` frame text the way the model was trained.

    Raises:
        ValueError: the tokenizer lacks the cls or sep token of ``roles`` (callers add them first).
    """
    if "cls" in roles and "sep" in roles:
        cls, sep = roles["cls"], roles["sep"]
        cls_id, sep_id = tokenizer.token_to_id(cls), tokenizer.token_to_id(sep)
        if cls_id is None or sep_id is None:
            raise ValueError(f"the tokenizer has no {cls} or no {sep} token to frame texts with")
        ids = {cls: cls_id, sep: sep_id}
        if cls == "<s>":  # RoBERTa frames pairs as <s> A </s></s> B </s>
            tokenizer.post_processor = processors.RobertaProcessing(
                (sep, sep_id), (cls, cls_id), trim_offsets=False, add_prefix_space=False
            )
        else:
            tokenizer.post_processor = processors.TemplateProcessing(
                single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1", special_tokens=list(ids.items())
            )


def train_tokenizer(texts: Iterator[str] | list[str], tok_cfg: TokenizerConfig) -> TextTokenizer:
    """Train a tokenizer of ``tok_cfg.kind`` on ``texts``.

    Args:
        texts: the training text (documents or sentences).
        tok_cfg: the `tokenizer` config group.
    Returns:
        The trained :class:`TextTokenizer`.
    """
    roles = special_roles(tok_cfg)
    tokenizer, make_trainer = build_untrained(tok_cfg.kind, tok_cfg.lowercase, roles)
    long_words = LongWordCount(tokenizer, "bytes" if tok_cfg.kind == "bpe" else "characters")
    bound_pre_tokens(tokenizer)
    tokenizer.train_from_iterator(
        long_words.counted(texts), trainer=make_trainer(tok_cfg.vocab_size, tok_cfg.min_frequency)
    )
    long_words.report()
    add_post_processor(tokenizer, roles)
    return TextTokenizer(tokenizer, roles, source="trained tokenizer")


def tokenizer_fingerprint(tok_cfg: TokenizerConfig) -> str:
    """The tokenizer settings that change what training produces, as a stable string."""
    keys = ("kind", "vocab_size", "min_frequency", "lowercase")
    values = {k: getattr(tok_cfg, k) for k in keys}
    values["special_tokens"] = special_roles(tok_cfg)
    values["max_pretoken_chars"] = MAX_PRETOKEN_CHARS
    return json.dumps(values, sort_keys=True)


def cached_tokenizer(path: Path, roles: dict[str, str], train: Callable[[], TextTokenizer]) -> TextTokenizer:
    """The tokenizer saved at ``path``, or ``train()``'s, saved there atomically for the next run.

    Training is not deterministic in `tokenizers` (ties broken in hash-map order), so only a
    cached tokenizer gives the same text the same ids every time. Two jobs sharing the cache train
    it once: the second waits for the first's file.
    """
    if path.exists():
        return TextTokenizer.from_file(path, roles)
    with cache_lock(path.parent.parent / f"{path.parent.name}.lock"):
        if path.exists():
            return TextTokenizer.from_file(path, roles)
        tokenizer = train()
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_new(tokenizer, path)
    return tokenizer


def _save_new(tokenizer: TextTokenizer, path: Path) -> None:
    """Write ``tokenizer`` to ``path`` through a temporary file that is renamed into place once complete."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)  # one left by a killed process of this pid (a link is removed, never followed)
    try:
        with open(tmp, "xb") as file:  # the bytes Tokenizer.save writes
            file.write(tokenizer.tokenizer.to_str(pretty=True).encode("utf-8"))
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and no_room(error):
            raise cache_full("the tokenizer", path.parent, error) from None
        raise
    os.replace(tmp, path)
