"""Corpus -> tokenizer -> training examples for each pretraining objective, cached on disk.

The tokenizer is cached by a hash of the data and the tokenizer settings; the examples by a hash
of the data, the tokenizer file and every setting that shapes them, so a second run with the
same data and settings reads both from `data.cache_dir` instead of recomputing them.

The corpus is streamed: documents are read from memory-mapped Arrow tables, tokenized and turned
into examples a chunk at a time (``CHUNK_CHARS`` characters), and appended to the on-disk stores,
so memory stays flat however large the corpus is. NSP partners and packed blocks are drawn within
a chunk; a corpus smaller than one chunk is processed exactly as a whole.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lmtrain.config.data import TextDataConfig
from lmtrain.config.objectives import MaskingConfig
from lmtrain.config.training import TokenizerConfig
from lmtrain.data.cache_lock import cache_lock
from lmtrain.data.corpus import MAX_DOCUMENT_CHARS, Corpus, held_out_mask
from lmtrain.data.hf_tokenizer import load_tokenizer_source
from lmtrain.data.masking import MaskingSpec, mask_tokens
from lmtrain.data.nsp_pairs import build_pairs
from lmtrain.data.packing import pack_sentences, pack_stream
from lmtrain.data.sources import CorpusSource, corpus_source
from lmtrain.data.store import ExampleStore, StoreWriter, fingerprint
from lmtrain.data.tokenizer import (TextTokenizer, cached_tokenizer, special_roles, tokenizer_fingerprint,
                                    train_tokenizer)
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

# Bump when the example format or the algorithms that build examples change.
# 2: documents over corpus.MAX_DOCUMENT_CHARS are split into pieces.
EXAMPLES_VERSION = 2
# Characters of text tokenized at a time (the bundled corpus, 2.9M, is one chunk).
CHUNK_CHARS = 4_000_000
# Seed offset between chunks (chunk 0 keeps the configured seed).
_CHUNK_SEED_STRIDE = 100_003


@dataclass
class PretrainingData:
    """What a pretraining run reads: the tokenizer and the train / held-out example stores."""

    tokenizer: TextTokenizer
    tokenizer_path: Path | None  # None for a tokenizer another rank sent
    train: ExampleStore
    eval: ExampleStore
    from_cache: bool


def masking_spec(obj_cfg: MaskingConfig, tokenizer: TextTokenizer) -> MaskingSpec:
    """The MLM masking spec of an objective config for ``tokenizer``."""
    return MaskingSpec(
        mask_id=tokenizer.id("mask"),
        vocab_size=tokenizer.vocab_size,
        special_ids=tuple(tokenizer.special_ids),
        mask_prob=obj_cfg.mask_prob,
        mask_token_prob=obj_cfg.mask_token_prob,
        random_token_prob=obj_cfg.random_token_prob,
        whole_word=obj_cfg.whole_word,
    )


def tokenize_documents(docs: list[list[str]], tokenizer: TextTokenizer) -> list[list[np.ndarray]]:
    """Each sentence as a (2, L) array: ids in row 0, corpus-unique word ids in row 1."""
    flat = [s for d in docs for s in d]
    encoded = tokenizer.encode_words(flat)
    sentences, offset = [], 0
    for ids, words in encoded:
        word_ids = np.asarray([-1 if w is None else w for w in words], dtype=np.int64) + offset
        offset += (max((w for w in words if w is not None), default=-1) + 1)
        sentences.append(np.stack([np.asarray(ids, dtype=np.int64), word_ids]))
    result, i = [], 0
    for d in docs:
        result.append(sentences[i:i + len(d)])
        i += len(d)
    return result


def _static_mask(sequences: list[np.ndarray], word_ids: list[np.ndarray], spec: MaskingSpec, seed: int
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    pool = spec.random_candidates()
    masked, labels = [], []
    for ids, words in zip(sequences, word_ids):
        m, lab = mask_tokens(ids, spec, rng, word_ids=words, candidates_pool=pool)
        masked.append(m.astype(np.int32))
        labels.append(lab.astype(np.int32))
    return masked, labels


class ExampleRecipe(Protocol):
    """What the data side needs from a pretraining objective (its plug provides it).

    Attributes:
        name: the objective's name (recorded with the stores).
        example_format: sentence_pairs (BERT's NSP pairs), sentence_blocks (full sentences packed
            between [CLS] and [SEP], with word ids for whole-word masking) or token_stream (blocks cut
            from the document stream, end-of-text between documents: GPT, ELMo).
    """

    name: str
    example_format: str

    def static_masking(self, tokenizer: TextTokenizer) -> MaskingSpec | None:
        """The mask drawn once at preprocessing (BERT's static masking), or None."""

    def settings(self) -> dict[str, Any]:
        """Every setting that shapes the examples (part of the cache key)."""


EXAMPLE_FORMATS = ("sentence_pairs", "sentence_blocks", "token_stream")


def build_examples(docs: list[list[np.ndarray]], tokenizer: TextTokenizer, data_cfg: TextDataConfig, recipe: ExampleRecipe,
                   dupe_factor: int, seed: int) -> tuple[dict[str, list], dict[str, list]]:
    """Sequence and scalar fields of the examples ``recipe`` trains on.

    Returns:
        (sequences, scalars) as :func:`lmtrain.data.store.write_store` takes them.
    """
    fmt, spec = recipe.example_format, recipe.static_masking(tokenizer)
    if fmt == "sentence_pairs":
        ids, types, words, nsp = [], [], [], []
        for dupe in range(dupe_factor):
            for pair in build_pairs(docs, data_cfg.max_seq_len, data_cfg.short_seq_prob, tokenizer.id("cls"),
                                    tokenizer.id("sep"), seed=seed + dupe):
                ids.append(pair.input_ids)
                types.append(pair.token_type_ids)
                words.append(pair.word_ids)
                nsp.append(pair.next_sentence_label)
        if spec is None:
            return ({"input_ids": ids, "token_type_ids": types, "word_ids": words}, {"next_sentence_label": nsp})
        masked, labels = _static_mask(ids, words, spec, seed)
        return ({"input_ids": masked, "token_type_ids": types, "labels": labels}, {"next_sentence_label": nsp})
    if fmt == "sentence_blocks":
        if data_cfg.packing not in ("full_sentences", "doc_sentences"):
            raise UserError(f"data.packing={data_cfg.packing} is not supported; use full_sentences or doc_sentences.")
        blocks = pack_sentences(docs, data_cfg.max_seq_len, tokenizer.id("cls"), tokenizer.id("sep"),
                                cross_documents=data_cfg.packing == "full_sentences")
        if spec is not None:
            blocks = blocks * dupe_factor
            masked, labels = _static_mask([b[0] for b in blocks], [b[1] for b in blocks], spec, seed)
            return {"input_ids": masked, "labels": labels}, {}
        return {"input_ids": [b[0] for b in blocks], "word_ids": [b[1] for b in blocks]}, {}
    if fmt == "token_stream":
        blocks = pack_stream(docs, data_cfg.max_seq_len, tokenizer.id("eos"))
        return {"input_ids": [b[0] for b in blocks]}, {}
    raise UserError(f"objective={recipe.name} asks for examples of the format {fmt!r}; the formats are "
                    f"{', '.join(EXAMPLE_FORMATS)}.")


class SplitCorpus:
    """A corpus's train and held-out documents, streamed in chunks.

    Args:
        train: the training corpus (documents are held out of it unless ``held_out`` is given).
        held_out: a separate held-out corpus (``data.eval_files``), or None.
        eval_fraction, seed: how documents are held out of ``train`` when ``held_out`` is None.
    """

    def __init__(self, train: Corpus, held_out: Corpus | None, eval_fraction: float, seed: int):
        self.train, self.held_out = train, held_out
        self.mask = None if held_out is not None else held_out_mask(len(train), eval_fraction, seed)

    def chunks(self, max_chars: int = CHUNK_CHARS) -> Iterator[tuple[str, list[list[str]]]]:
        """("train" | "eval", documents) pairs, in corpus order."""
        if self.mask is None:
            yield from (("train", docs) for docs in self.train.chunks(max_chars))
            yield from (("eval", docs) for docs in self.held_out.chunks(max_chars))
            return
        start = 0
        for docs in self.train.chunks(max_chars):
            flags = self.mask[start:start + len(docs)]
            start += len(docs)
            yield "train", [d for d, held in zip(docs, flags) if not held]
            yield "eval", [d for d, held in zip(docs, flags) if held]

    def train_texts(self) -> Iterator[str]:
        """Each training document as one string (what the tokenizer is trained on)."""
        start = 0
        for docs in self.train.chunks(CHUNK_CHARS):  # the held-out corpus is never read here
            flags = self.mask[start:start + len(docs)] if self.mask is not None else [False] * len(docs)
            start += len(docs)
            yield from (" ".join(d) for d, held in zip(docs, flags) if not held)

    def describe(self) -> str:
        """The split for log lines (counting documents only where the mask already did)."""
        if self.mask is None:
            return "held-out documents from data.eval_files"
        return f"{len(self.mask) - int(self.mask.sum())} train / {int(self.mask.sum())} held-out documents"


def _named_tokenizer(name: str, roles: dict[str, str], cache: Path) -> tuple[TextTokenizer, Path]:
    """``tokenizer.path``'s tokenizer and a tokenizer.json of it (a folder's or Hub model's is saved to the cache)."""
    tokenizer = load_tokenizer_source(name, roles)
    path = Path(name).expanduser()
    if path.is_file():
        return tokenizer, path
    # examples are cached by the tokenizer file's hash, and checkpoints copy the file: give them one
    saved = cache / "tokenizers" / fingerprint("named-tokenizer", tokenizer.tokenizer.to_str()) / "tokenizer.json"
    return cached_tokenizer(saved, tokenizer.roles, lambda: tokenizer), saved


def _tokenizer_for(data_cfg: TextDataConfig, tok_cfg: TokenizerConfig, cache: Path, digests: list[str], corpus
                   ) -> tuple[TextTokenizer, Path]:
    roles = special_roles(tok_cfg)
    if tok_cfg.path:
        return _named_tokenizer(tok_cfg.path, roles, cache)
    key = fingerprint("tokenizer", digests, tokenizer_fingerprint(tok_cfg), data_cfg.documents, MAX_DOCUMENT_CHARS,
                      data_cfg.eval_fraction, data_cfg.split_seed, data_cfg.text_field)
    path = cache / "tokenizers" / key / "tokenizer.json"

    def train() -> TextTokenizer:
        split = corpus()
        log.info("training a %s tokenizer (vocabulary %d) on the training part of %s", tok_cfg.kind,
                 tok_cfg.vocab_size, split.describe())
        return train_tokenizer(split.train_texts(), tok_cfg)

    return cached_tokenizer(path, roles, train), path


def _write_examples(root: Path, split: SplitCorpus, tokenizer: TextTokenizer, data_cfg: TextDataConfig,
                    recipe: ExampleRecipe) -> None:
    """Tokenize ``split`` chunk by chunk and append its examples to the train and eval stores under ``root``."""
    settings = {"train": (data_cfg.dupe_factor, data_cfg.split_seed), "eval": (1, data_cfg.split_seed + 10_000)}
    meta = {"objective": recipe.name}
    chunk_index = {"train": 0, "eval": 0}
    with StoreWriter(root / "train", data_cfg.max_seq_len, meta) as train_store, \
            StoreWriter(root / "eval", data_cfg.max_seq_len, meta) as eval_store:
        stores = {"train": train_store, "eval": eval_store}
        for name, docs in split.chunks():
            if not docs:
                continue
            dupe, seed = settings[name]
            seed += _CHUNK_SEED_STRIDE * chunk_index[name]
            chunk_index[name] += 1
            sequences, scalars = build_examples(tokenize_documents(docs, tokenizer), tokenizer, data_cfg, recipe,
                                                dupe, seed)
            stores[name].append(sequences, scalars)
        for name, store in stores.items():
            if store.columns["length"].rows == 0:
                raise UserError(f"the {name} part of the corpus gave no training sequences "
                                f"(data.max_seq_len={data_cfg.max_seq_len}); add text or shorten data.max_seq_len.")


class PretrainingPreparation:
    """One corpus prepared in two steps that the ranks of a job can split: the tokenizer (global rank 0
    trains or loads it), then the examples from a given tokenizer (each node's first process).

    Args:
        data_cfg: the `data` config group.
        tok_cfg: the `tokenizer` config group.
    """

    def __init__(self, data_cfg: TextDataConfig, tok_cfg: TokenizerConfig):
        self.data_cfg, self.tok_cfg = data_cfg, tok_cfg
        self.cache = Path(data_cfg.cache_dir).expanduser()
        self._source: CorpusSource | None = None
        self._split: SplitCorpus | None = None  # opened when first needed: a cached run never reads the corpus

    @property
    def source(self) -> CorpusSource:
        """The corpus's files and their digests."""
        if self._source is None:
            self._source = corpus_source(self.data_cfg, str(self.cache / "datasets"))
        return self._source

    def corpus(self) -> SplitCorpus:
        """The corpus split into train and held-out documents (opened once)."""
        if self._split is None:
            train, held_out = self.source.open()
            self._split = SplitCorpus(train, held_out, self.data_cfg.eval_fraction, self.data_cfg.split_seed)
        return self._split

    def tokenizer(self) -> tuple[TextTokenizer, Path]:
        """The tokenizer (``tokenizer.path``'s, cached, or trained now and cached) and its ``tokenizer.json``."""
        return _tokenizer_for(self.data_cfg, self.tok_cfg, self.cache, self.source.digests, self.corpus)

    def examples(self, tokenizer: TextTokenizer, tokenizer_text: str, recipe: ExampleRecipe,
                 tokenizer_path: Path | None = None) -> PretrainingData:
        """The train and held-out examples of ``tokenizer`` (whose file is ``tokenizer_text``), cached.

        The cache key holds the digest of ``tokenizer_text``, so every process given the same
        tokenizer finds the same entry; writing one takes its lock, so processes (or nodes) that share
        ``data.cache_dir`` prepare it once and the others read it.
        """
        data_cfg = self.data_cfg
        shape_keys = {k: getattr(data_cfg, k) for k in ("max_seq_len", "short_seq_prob", "dupe_factor", "packing",
                                                        "documents", "eval_fraction", "split_seed", "text_field",
                                                        "format")}
        key = fingerprint("examples", EXAMPLES_VERSION, self.source.digests, text_digest(tokenizer_text), shape_keys,
                          recipe.example_format, recipe.settings())
        root = self.cache / "examples" / key
        cached = _complete(root)
        if not cached:
            with cache_lock(root.parent / f"{key}.lock"):
                cached = _complete(root)
                if not cached:
                    split = self.corpus()
                    log.info("tokenizing %s", split.describe())
                    _write_examples(root, split, tokenizer, data_cfg, recipe)
        if cached:
            log.info("using cached examples %s", root)
        return PretrainingData(tokenizer, tokenizer_path, ExampleStore(root / "train"), ExampleStore(root / "eval"),
                               cached)


def _complete(root: Path) -> bool:
    """Whether both example stores are at ``root``."""
    return ExampleStore.exists(root / "train") and ExampleStore.exists(root / "eval")


def text_digest(text: str) -> str:
    """SHA-256 of a file's ``text`` as :func:`lmtrain.data.store.file_digest` gives it for the file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepare_pretraining_data(data_cfg: TextDataConfig, tok_cfg: TokenizerConfig, recipe: ExampleRecipe) -> PretrainingData:
    """Read, tokenize and turn the corpus into train and held-out examples (cached, streamed), in one process.

    Args:
        data_cfg: the `data` config group.
        tok_cfg: the `tokenizer` config group.
        recipe: the objective's example format and static masking (its plug).
    Returns:
        The tokenizer and both example stores.
    """
    preparation = PretrainingPreparation(data_cfg, tok_cfg)
    tokenizer, path = preparation.tokenizer()
    return preparation.examples(tokenizer, read_tokenizer_text(path), recipe, path)


def read_tokenizer_text(path: Path) -> str:
    """A ``tokenizer.json``'s text, byte for byte (no newline translation: its digest keys the examples)."""
    return path.read_bytes().decode("utf-8")
