"""Documents of one chunk -> the training examples a pretraining objective asks for.

Everything here depends only on the chunk's documents and its seed, never on the chunks before it,
so chunks can be turned into examples in any order, by any process, with the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lmtrain.config.data import TextDataConfig
from lmtrain.data.masking import MaskingSpec, mask_tokens
from lmtrain.data.nsp_pairs import build_pairs
from lmtrain.data.packing import pack_sentences, pack_stream
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError

EXAMPLE_FORMATS = ("sentence_pairs", "sentence_blocks", "token_stream")


class ExampleRecipe(Protocol):
    """What the data side needs from a pretraining objective (its plug provides it).

    Attributes:
        name: the objective's name (recorded with the stores).
        example_format: sentence_pairs (BERT's NSP pairs), sentence_blocks (full sentences packed
            between [CLS] and [SEP], with word ids for whole-word masking) or token_stream (blocks cut
            from the document stream, end-of-text between documents: GPT, ELMo).
    """

    # read-only members: an objective may hold them as properties or class attributes
    @property
    def name(self) -> str:
        """The objective's name."""

    @property
    def example_format(self) -> str:
        """How its examples are cut from the corpus."""

    def static_masking(self, tokenizer: TextTokenizer) -> MaskingSpec | None:
        """The mask drawn once at preprocessing (BERT's static masking), or None."""

    def settings(self) -> dict[str, Any]:
        """Every setting that shapes the examples (part of the cache key)."""


@dataclass(frozen=True)
class ExamplePlan:
    """A recipe resolved for one tokenizer: plain values that worker processes receive.

    Attributes:
        objective: the objective's name (recorded with the stores).
        example_format: one of :data:`EXAMPLE_FORMATS`.
        static_mask: the mask drawn once at preprocessing, or None.
    """

    objective: str
    example_format: str
    static_mask: MaskingSpec | None

    @classmethod
    def of(cls, recipe: ExampleRecipe, tokenizer: TextTokenizer) -> ExamplePlan:
        """The plan of ``recipe`` for ``tokenizer``."""
        return cls(recipe.name, recipe.example_format, recipe.static_masking(tokenizer))


def tokenize_documents(docs: list[list[str]], tokenizer: TextTokenizer) -> list[list[np.ndarray]]:
    """Each sentence as a (2, L) array: ids in row 0, corpus-unique word ids in row 1."""
    flat = [s for d in docs for s in d]
    encoded = tokenizer.encode_words(flat)
    sentences, offset = [], 0
    for ids, words in encoded:
        word_ids = np.asarray([-1 if w is None else w for w in words], dtype=np.int64) + offset
        offset += max((w for w in words if w is not None), default=-1) + 1
        sentences.append(np.stack([np.asarray(ids, dtype=np.int64), word_ids]))
    result, i = [], 0
    for d in docs:
        result.append(sentences[i : i + len(d)])
        i += len(d)
    return result


def _static_mask(
    sequences: list[np.ndarray], word_ids: list[np.ndarray], spec: MaskingSpec, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    pool = spec.random_candidates()
    masked, labels = [], []
    for ids, words in zip(sequences, word_ids):
        m, lab = mask_tokens(ids, spec, rng, word_ids=words, candidates_pool=pool)
        masked.append(m.astype(np.int32))
        labels.append(lab.astype(np.int32))
    return masked, labels


def build_examples(
    docs: list[list[np.ndarray]],
    tokenizer: TextTokenizer,
    data_cfg: TextDataConfig,
    plan: ExamplePlan,
    dupe_factor: int,
    seed: int,
) -> tuple[dict[str, list], dict[str, list]]:
    """Sequence and scalar fields of the examples ``plan`` trains on.

    Returns:
        (sequences, scalars) as :func:`lmtrain.data.store.write_store` takes them.
    """
    fmt, spec = plan.example_format, plan.static_mask
    if fmt == "sentence_pairs":
        ids, types, words, nsp = [], [], [], []
        for dupe in range(dupe_factor):
            for pair in build_pairs(
                docs,
                data_cfg.max_seq_len,
                data_cfg.short_seq_prob,
                tokenizer.id("cls"),
                tokenizer.id("sep"),
                seed=seed + dupe,
            ):
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
        blocks = pack_sentences(
            docs,
            data_cfg.max_seq_len,
            tokenizer.id("cls"),
            tokenizer.id("sep"),
            cross_documents=data_cfg.packing == "full_sentences",
        )
        if spec is not None:
            blocks = blocks * dupe_factor
            masked, labels = _static_mask([b[0] for b in blocks], [b[1] for b in blocks], spec, seed)
            return {"input_ids": masked, "labels": labels}, {}
        return {"input_ids": [b[0] for b in blocks], "word_ids": [b[1] for b in blocks]}, {}
    if fmt == "token_stream":
        blocks = pack_stream(docs, data_cfg.max_seq_len, tokenizer.id("eos"))
        return {"input_ids": [b[0] for b in blocks]}, {}
    raise UserError(
        f"objective={plan.objective} asks for examples of the format {fmt!r}; the formats are "
        f"{', '.join(EXAMPLE_FORMATS)}."
    )
