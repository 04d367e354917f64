"""Corpus -> tokenizer -> training examples for each pretraining objective, cached on disk.

The tokenizer is cached by a hash of the data and the tokenizer settings; the examples by a hash
of the data, the tokenizer file and every setting that shapes them, so a second run with the
same data and settings reads both from `data.cache_dir` instead of recomputing them.

The corpus is streamed: documents are read from memory-mapped Arrow tables, tokenized and turned
into examples a chunk at a time (``CHUNK_CHARS`` characters), each chunk written as one shard of
the on-disk stores, so memory stays flat however large the corpus is. NSP partners and packed
blocks are drawn within a chunk, with a seed of its own; a corpus smaller than one chunk is
processed exactly as a whole. Chunk boundaries depend only on the text, so ``data.num_proc``
processes building the chunks give the same stores as one process does.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmtrain.config.data import TextDataConfig
from lmtrain.config.objectives import MaskingConfig
from lmtrain.config.training import TokenizerConfig
from lmtrain.data.cache_lock import cache_lock, remove_leftovers
from lmtrain.data.cache_room import cache_full, no_room
from lmtrain.data.chunk_workers import ChunkBuilder, ChunkJob, build_chunks, log_reports, shard_name
from lmtrain.data.corpus import MAX_DOCUMENT_CHARS, Corpus, held_out_mask
from lmtrain.data.examples import ExamplePlan, ExampleRecipe
from lmtrain.data.hf_tokenizer import load_tokenizer_source
from lmtrain.data.masking import MaskingSpec
from lmtrain.data.sources import CorpusSource, corpus_source
from lmtrain.data.store import ExampleStore, fingerprint, index_shards
from lmtrain.data.tokenizer import (
    TextTokenizer,
    cached_tokenizer,
    special_roles,
    tokenizer_fingerprint,
    train_tokenizer,
)
from lmtrain.errors import UserError
from lmtrain.files.atomic import atomic_directory
from lmtrain.files.cache_home import open_cache_folder

log = logging.getLogger(__name__)

# Bump when the example format or the algorithms that build examples change.
# 2: documents over corpus.MAX_DOCUMENT_CHARS are split into pieces.
# 3: stores sharded by chunk (the examples are those of 2).
# 4: a tokenizer.json that pads or cuts every text (tokenizer.path=) no longer does (its examples were padded).
EXAMPLES_VERSION = 4
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
            assert self.held_out is not None  # __init__ draws no mask only when a held-out corpus is given
            yield from (("train", docs) for docs in self.train.chunks(max_chars))
            yield from (("eval", docs) for docs in self.held_out.chunks(max_chars))
            return
        start = 0
        for docs in self.train.chunks(max_chars):
            flags = self.mask[start : start + len(docs)]
            start += len(docs)
            yield "train", [d for d, held in zip(docs, flags) if not held]
            yield "eval", [d for d, held in zip(docs, flags) if held]

    def train_texts(self) -> Iterator[str]:
        """Each training document as one string (what the tokenizer is trained on)."""
        start = 0
        for docs in self.train.chunks(CHUNK_CHARS):  # the held-out corpus is never read here
            flags = self.mask[start : start + len(docs)] if self.mask is not None else [False] * len(docs)
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


def _tokenizer_for(
    data_cfg: TextDataConfig, tok_cfg: TokenizerConfig, cache: Path, digests: list[str], corpus
) -> tuple[TextTokenizer, Path]:
    roles = special_roles(tok_cfg)
    if tok_cfg.path:
        return _named_tokenizer(tok_cfg.path, roles, cache)
    key = fingerprint(
        "tokenizer",
        digests,
        tokenizer_fingerprint(tok_cfg),
        data_cfg.documents,
        MAX_DOCUMENT_CHARS,
        data_cfg.eval_fraction,
        data_cfg.split_seed,
        data_cfg.text_field,
    )
    path = cache / "tokenizers" / key / "tokenizer.json"

    def train() -> TextTokenizer:
        split = corpus()
        log.info(
            "training a %s tokenizer (vocabulary %d) on the training part of %s",
            tok_cfg.kind,
            tok_cfg.vocab_size,
            split.describe(),
        )
        return train_tokenizer(split.train_texts(), tok_cfg)

    return cached_tokenizer(path, roles, train), path


def _chunk_jobs(split: SplitCorpus, data_cfg: TextDataConfig, folder: Path) -> Iterator[ChunkJob]:
    """The non-empty chunks of ``split`` in corpus order, each with its seed and its shard under ``folder``."""
    settings = {"train": (data_cfg.dupe_factor, data_cfg.split_seed), "eval": (1, data_cfg.split_seed + 10_000)}
    counts = {"train": 0, "eval": 0}
    for part, docs in split.chunks(CHUNK_CHARS):
        if not docs:
            continue
        dupe, seed = settings[part]
        index = counts[part]
        counts[part] += 1
        yield ChunkJob(part, index, docs, dupe, seed + _CHUNK_SEED_STRIDE * index, folder / part / shard_name(index))


def _write_examples(
    root: Path, split: SplitCorpus, tokenizer: TextTokenizer, data_cfg: TextDataConfig, plan: ExamplePlan
) -> None:
    """Tokenize ``split`` chunk by chunk (``data.num_proc`` processes) into the sharded train and eval stores
    under ``root``, which appears only once both are complete (a full disk leaves nothing: UserError)."""
    started = time.perf_counter()
    try:
        with atomic_directory(root) as folder:
            reports = build_chunks(
                _chunk_jobs(split, data_cfg, folder), ChunkBuilder(tokenizer, data_cfg, plan), data_cfg.num_proc
            )
            log_reports(reports, time.perf_counter() - started)
            for part in ("train", "eval"):
                shards = sorted(r.index for r in reports if r.part == part and r.examples)
                if not shards:
                    raise UserError(
                        f"the {part} part of the corpus gave no training sequences (data.max_seq_len="
                        f"{data_cfg.max_seq_len}); add text or shorten data.max_seq_len."
                    )
                index_shards(folder / part, [shard_name(index) for index in shards], {"objective": plan.objective})
    except OSError as error:
        if not no_room(error):
            raise
        raise cache_full("the tokenized examples", root.parent, error) from None


class PretrainingPreparation:
    """One corpus prepared in two steps that the ranks of a job can split: the tokenizer (global rank 0
    trains or loads it), then the examples from a given tokenizer (each node's first process).

    Args:
        data_cfg: the `data` config group.
        tok_cfg: the `tokenizer` config group.
    """

    def __init__(self, data_cfg: TextDataConfig, tok_cfg: TokenizerConfig):
        self.data_cfg, self.tok_cfg = data_cfg, tok_cfg
        self.cache = open_cache_folder(data_cfg.cache_dir)
        self._source: CorpusSource | None = None
        self._split: SplitCorpus | None = None  # opened when first needed: a cached run never reads the corpus

    @property
    def source(self) -> CorpusSource:
        """The corpus's files and their digests."""
        if self._source is None:
            self._source = corpus_source(self.data_cfg)
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

    def examples(
        self, tokenizer: TextTokenizer, tokenizer_text: str, recipe: ExampleRecipe, tokenizer_path: Path | None = None
    ) -> PretrainingData:
        """The train and held-out examples of ``tokenizer`` (whose file is ``tokenizer_text``), cached.

        The cache key holds the digest of ``tokenizer_text``, so every process given the same
        tokenizer finds the same entry; writing one takes its lock, so processes (or nodes) that share
        ``data.cache_dir`` prepare it once and the others read it.
        """
        data_cfg = self.data_cfg
        shape_keys = {
            k: getattr(data_cfg, k)
            for k in (
                "max_seq_len",
                "short_seq_prob",
                "dupe_factor",
                "packing",
                "documents",
                "eval_fraction",
                "split_seed",
                "text_field",
                "format",
            )
        }
        key = fingerprint(
            "examples",
            EXAMPLES_VERSION,
            CHUNK_CHARS,
            self.source.digests,
            text_digest(tokenizer_text),
            shape_keys,
            recipe.example_format,
            recipe.settings(),
        )
        root = self.cache / "examples" / key
        cached = _complete(root)
        if not cached:
            with cache_lock(root.parent / f"{key}.lock"):
                cached = _complete(root)
                if not cached:
                    remove_leftovers(root)
                    split = self.corpus()
                    log.info(
                        "tokenizing %s with %d process%s",
                        split.describe(),
                        data_cfg.num_proc,
                        "" if data_cfg.num_proc == 1 else "es",
                    )
                    _write_examples(root, split, tokenizer, data_cfg, ExamplePlan.of(recipe, tokenizer))
        if cached:
            log.info("using cached examples %s", root)
        return PretrainingData(
            tokenizer, tokenizer_path, ExampleStore(root / "train"), ExampleStore(root / "eval"), cached
        )


def _complete(root: Path) -> bool:
    """Whether both example stores are at ``root``."""
    return ExampleStore.exists(root / "train") and ExampleStore.exists(root / "eval")


def text_digest(text: str) -> str:
    """SHA-256 of a file's ``text`` as :func:`lmtrain.data.store.file_digest` gives it for the file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepare_pretraining_data(
    data_cfg: TextDataConfig, tok_cfg: TokenizerConfig, recipe: ExampleRecipe
) -> PretrainingData:
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
