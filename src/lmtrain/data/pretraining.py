"""Corpus -> tokenizer -> training examples for each pretraining objective, cached on disk.

The tokenizer is cached by a hash of the data and the tokenizer settings; the examples by a hash
of the data, the tokenizer file and every setting that shapes them, so a second run with the
same data and settings reads both from `data.cache_dir` instead of recomputing them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmtrain.data.corpus import corpus_files, load_documents, split_documents
from lmtrain.data.masking import MaskingSpec, mask_tokens
from lmtrain.data.nsp_pairs import build_pairs
from lmtrain.data.packing import pack_sentences, pack_stream
from lmtrain.data.store import ExampleStore, file_digest, fingerprint, write_store
from lmtrain.data.tokenizer import TextTokenizer, special_roles, tokenizer_fingerprint, train_tokenizer
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

# Bump when the example format or the algorithms that build examples change.
EXAMPLES_VERSION = 1


@dataclass
class PretrainingData:
    """What a pretraining run reads: the tokenizer and the train / held-out example stores."""

    tokenizer: TextTokenizer
    tokenizer_path: Path
    train: ExampleStore
    eval: ExampleStore
    from_cache: bool


def masking_spec(obj_cfg: Any, tokenizer: TextTokenizer) -> MaskingSpec:
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


def build_examples(docs: list[list[np.ndarray]], tokenizer: TextTokenizer, data_cfg: Any, obj_cfg: Any,
                   dupe_factor: int, seed: int) -> tuple[dict[str, list], dict[str, list]]:
    """Sequence and scalar fields of the examples ``obj_cfg.name`` trains on.

    Returns:
        (sequences, scalars) as :func:`lmtrain.data.store.write_store` takes them.
    """
    name = obj_cfg.name
    if name == "mlm_nsp":
        spec = masking_spec(obj_cfg, tokenizer)
        ids, types, words, nsp = [], [], [], []
        for dupe in range(dupe_factor):
            for pair in build_pairs(docs, data_cfg.max_seq_len, data_cfg.short_seq_prob, tokenizer.id("cls"),
                                    tokenizer.id("sep"), seed=seed + dupe):
                ids.append(pair.input_ids)
                types.append(pair.token_type_ids)
                words.append(pair.word_ids)
                nsp.append(pair.next_sentence_label)
        masked, labels = _static_mask(ids, words, spec, seed)
        return ({"input_ids": masked, "token_type_ids": types, "labels": labels}, {"next_sentence_label": nsp})
    if name == "mlm":
        if data_cfg.packing not in ("full_sentences", "doc_sentences"):
            raise UserError(f"data.packing={data_cfg.packing} is not supported; use full_sentences or doc_sentences.")
        blocks = pack_sentences(docs, data_cfg.max_seq_len, tokenizer.id("cls"), tokenizer.id("sep"),
                                cross_documents=data_cfg.packing == "full_sentences")
        if obj_cfg.masking == "static":
            spec = masking_spec(obj_cfg, tokenizer)
            blocks = blocks * dupe_factor
            masked, labels = _static_mask([b[0] for b in blocks], [b[1] for b in blocks], spec, seed)
            return {"input_ids": masked, "labels": labels}, {}
        return {"input_ids": [b[0] for b in blocks], "word_ids": [b[1] for b in blocks]}, {}
    if name in ("clm", "bilm"):  # ELMo's biLM reads the same packed blocks as GPT
        blocks = pack_stream(docs, data_cfg.max_seq_len, tokenizer.id("eos"))
        return {"input_ids": [b[0] for b in blocks]}, {}
    raise UserError(f"objective.name={name} is not a pretraining objective; use mlm_nsp, mlm, clm or bilm.")


def _tokenizer_for(data_cfg: Any, tok_cfg: Any, cache: Path, digests: list[str], load_docs) -> tuple[TextTokenizer, Path]:
    roles = special_roles(tok_cfg)
    if tok_cfg.path:
        path = Path(tok_cfg.path).expanduser()
        return TextTokenizer.from_file(path, roles), (path / "tokenizer.json" if path.is_dir() else path)
    key = fingerprint("tokenizer", digests, tokenizer_fingerprint(tok_cfg), data_cfg.documents,
                      data_cfg.eval_fraction, data_cfg.split_seed, data_cfg.text_field)
    path = cache / "tokenizers" / key / "tokenizer.json"
    if path.exists():
        return TextTokenizer.from_file(path, roles), path
    train_docs, _ = load_docs()
    log.info("training a %s tokenizer (vocabulary %d) on %d documents", tok_cfg.kind, tok_cfg.vocab_size, len(train_docs))
    tokenizer = train_tokenizer((" ".join(d) for d in train_docs), tok_cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tokenizer.save(tmp)
    os.replace(tmp, path)
    return tokenizer, path


def prepare_pretraining_data(data_cfg: Any, tok_cfg: Any, obj_cfg: Any) -> PretrainingData:
    """Read, tokenize and turn the corpus into train and held-out examples (cached).

    Args:
        data_cfg: the `data` config group.
        tok_cfg: the `tokenizer` config group.
        obj_cfg: the `objective` config group (decides the example format).
    Returns:
        The tokenizer and both example stores.
    """
    train_files, eval_files = corpus_files(data_cfg)
    digests = [file_digest(p) for p in train_files] + ["eval"] + [file_digest(p) for p in eval_files]
    cache = Path(data_cfg.cache_dir).expanduser()
    hf_cache = str(cache / "datasets")
    docs_memo: list = []

    def load_docs():
        if not docs_memo:
            docs = load_documents(train_files, data_cfg.format, data_cfg.text_field, data_cfg.documents, hf_cache)
            if eval_files:
                held_out = load_documents(eval_files, data_cfg.format, data_cfg.text_field, data_cfg.documents, hf_cache)
                docs_memo.append((docs, held_out))
            else:
                docs_memo.append(split_documents(docs, data_cfg.eval_fraction, data_cfg.split_seed))
        return docs_memo[0]

    tokenizer, tokenizer_path = _tokenizer_for(data_cfg, tok_cfg, cache, digests, load_docs)
    shape_keys = {k: data_cfg[k] for k in ("max_seq_len", "short_seq_prob", "dupe_factor", "packing", "documents",
                                          "eval_fraction", "split_seed", "text_field", "format")}
    key = fingerprint("examples", EXAMPLES_VERSION, digests, file_digest(tokenizer_path), shape_keys,
                      {k: obj_cfg[k] for k in obj_cfg})
    root = cache / "examples" / key
    if ExampleStore.exists(root / "train") and ExampleStore.exists(root / "eval"):
        log.info("using cached examples %s", root)
        return PretrainingData(tokenizer, tokenizer_path, ExampleStore(root / "train"), ExampleStore(root / "eval"), True)
    train_docs, eval_docs = load_docs()
    log.info("tokenizing %d train / %d held-out documents", len(train_docs), len(eval_docs))
    for split, docs, dupe, seed in (("train", train_docs, data_cfg.dupe_factor, data_cfg.split_seed),
                                    ("eval", eval_docs, 1, data_cfg.split_seed + 10_000)):
        sequences, scalars = build_examples(tokenize_documents(docs, tokenizer), tokenizer, data_cfg, obj_cfg,
                                            dupe, seed)
        if not next(iter(sequences.values())):
            raise UserError(f"the {split} part of the corpus gave no training sequences "
                            f"(data.max_seq_len={data_cfg.max_seq_len}); add text or shorten data.max_seq_len.")
        write_store(root / split, sequences, scalars, {"objective": obj_cfg.name})
    return PretrainingData(tokenizer, tokenizer_path, ExampleStore(root / "train"), ExampleStore(root / "eval"), False)
