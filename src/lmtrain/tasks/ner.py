"""Named-entity recognition: CoNLL / JSONL / `datasets` sentences, a tag per word, entity-level F1."""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import numpy as np
import torch

from lmtrain.config.data import NerDataConfig
from lmtrain.config.tasks import NerTaskConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.heads import TokenClassifierHead
from lmtrain.objectives.entity_spans import entity_spans
from lmtrain.objectives.metrics import class_weights, entity_scores
from lmtrain.objectives.token_classification import TokenClassification, best_tags, tag_scores
from lmtrain.tasks.alignment import make_windows, window_labels, words_from_windows
from lmtrain.tasks.base import Task, TaskDataset, by_length, run_batches
from lmtrain.tasks.conll import (
    TaggedSentence,
    allowed_transitions,
    check_scheme,
    conll_tag_column,
    iob1_to_bio,
    read_conll,
    read_tagged_jsonl,
    read_tagged_split,
)
from lmtrain.tasks.files import file_format

log = logging.getLogger(__name__)
_WORD = re.compile(r"'s\b|\d+(?:[.,:]\d+)*\w*|\w+(?:[-.&]\w+)*|[^\w\s]")
_PREFIX_ORDER = {"B": 0, "I": 1, "E": 2, "S": 3}


def label_order(tags: set[str]) -> list[str]:
    """``O`` first, then by entity type and prefix (B, I, E, S)."""
    rest = sorted((t for t in tags if t != "O"), key=lambda t: (t[2:], _PREFIX_ORDER.get(t[0], 9), t))
    return ["O", *rest]


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Words and punctuation of raw text with their character spans."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


class NerTask(Task):
    """Tagging with the ``tagger`` head (dropout -> [task biLSTM] -> linear on every token, [CRF]).

    Args:
        data_cfg: the ``data`` config (files, format, tag column, scheme).
        labels: the label list of a fine-tuned checkpoint (prediction), or None to read it from training data.
        options: the ``task`` config (encoder, lstm_dim, crf).
    """

    name, head, head_class, causal = "ner", "tagger", TokenClassifierHead, False
    options: NerTaskConfig
    predict_example = "Prime Minister John Howard met union leaders in Sydney on Tuesday ."
    config_class, data_config = NerTaskConfig, NerDataConfig
    cfg: NerDataConfig  # a task is built with its own data_config (the finetune config types `data` with it)

    def _read(self, path, key: str) -> list[TaggedSentence]:
        fmt = file_format(path, self.cfg.format, "conll")
        if fmt == "conll":
            sentences = read_conll(path, conll_tag_column(self.cfg.tag_column), key)
        elif fmt == "jsonl":
            sentences = read_tagged_jsonl(path, self.cfg.tokens_field, self.cfg.tags_field, key)
        else:
            raise UserError(
                f"{key}: {path} is read as {fmt}, which holds no tags; task=ner reads CoNLL "
                "column files or JSON lines (data.format=conll|jsonl)."
            )
        return self._checked(sentences, str(path), key)

    def _read_split(self, split, key: str) -> list[TaggedSentence]:
        sentences = read_tagged_split(split, self.cfg.tokens_field, self.cfg.tag_column, key)
        return self._checked(sentences, split.where, key)

    def _checked(self, sentences: list[TaggedSentence], where: str, key: str) -> list[TaggedSentence]:
        """``sentences`` checked against ``data.scheme``, IOB1 entities converted to BIO."""
        if not sentences:
            raise UserError(f"{key}: {where} holds no sentences.")
        check_scheme(sentences, self.cfg.scheme, key)
        if self.cfg.scheme not in ("bio", "iob1"):
            return sentences
        converted = [iob1_to_bio(s.tags) for s in sentences]
        if self.cfg.scheme == "bio" and any(bio != s.tags for bio, s in zip(converted, sentences)):
            log.info(
                "%s: some entities start with I- (IOB1, as in CoNLL-2003); converting them to BIO "
                "(data.scheme=iob1 says so explicitly)",
                where,
            )
        for sentence, bio in zip(sentences, converted):
            sentence.tags = bio
        return sentences

    def read(self) -> None:
        """Read train / held-out sentences; the label set comes from the training data."""
        train_path = self._read_splits()
        self.labels = label_order({t for s in self.train for t in s.tags})
        known = set(self.labels)
        for sentence in self.eval:
            for tag, line in zip(sentence.tags, sentence.lines):
                if tag not in known:
                    raise UserError(
                        f"{self.eval_key}: {sentence.path}, line {line}: label '{tag}' does not occur in "
                        f"the training data ({train_path}), so the model cannot learn it; training "
                        f"labels: {', '.join(self.labels)}. Fix the tag, or add examples of it to "
                        "training."
                    )

    def texts(self) -> list[str]:
        """Training sentences joined with spaces."""
        return [" ".join(s.words) for s in self.train]

    def _encode(self, sentences: list[TaggedSentence], tokenizer, max_seq_len: int) -> list[dict[str, Any]]:
        index = {label: i for i, label in enumerate(self.labels)}
        windows = make_windows(tokenizer, [s.words for s in sentences], max_seq_len)
        tag_ids = [[index[t] for t in s.tags] for s in sentences]
        return [
            {
                "input_ids": w.input_ids,
                "labels": window_labels(w, tag_ids[w.sentence]),
                "sentence": w.sentence,
                "window": w.window,
            }
            for w in windows
        ]

    def example_inputs(self) -> Any:
        """The words and tags of the train and held-out sentences (what :meth:`datasets` encodes)."""
        return [[[s.words, s.tags] for s in sentences] for sentences in (self.train, self.eval)]

    def datasets(self, tokenizer, max_seq_len: int) -> tuple[TaskDataset, TaskDataset]:
        """Windows of the train / held-out sentences with labels on first sub-words."""
        return (
            TaskDataset(self._encode(self.train, tokenizer, max_seq_len)),
            TaskDataset(by_length(self._encode(self.eval, tokenizer, max_seq_len))),
        )

    def objective(self, weights: Any) -> TokenClassification:
        """Token classification over this task's labels, scored with seqeval."""
        index = {label: i for i, label in enumerate(self.labels)}
        counts = Counter(index[t] for s in self.train for t in s.tags)
        return TokenClassification(self.labels, self.cfg.scheme, class_weights(counts, len(self.labels), weights))

    def baselines(self, tokenizer: TextTokenizer | None = None) -> dict[str, float]:
        """All-O (word accuracy; its entity F1 is 0) and a lexicon (each word's most frequent training tag)."""
        gold = [s.tags for s in self.eval]
        n_words = sum(len(t) for t in gold)
        pairs = Counter((word, tag) for s in self.train for word, tag in zip(s.words, s.tags))
        best: dict[str, tuple[int, str]] = {}  # word -> (count, tag); ties go to the tag seen first
        for (word, tag), count in pairs.items():
            if word not in best or count > best[word][0]:
                best[word] = (count, tag)
        lexicon = [[best[w][1] if w in best else "O" for w in s.words] for s in self.eval]
        return {
            "baseline/all_o_acc": sum(t == "O" for tags in gold for t in tags) / max(n_words, 1),
            "baseline/all_o_f1": 0.0,
            "baseline/lexicon_f1": entity_scores(gold, lexicon, self.cfg.scheme)["f1"],
        }

    def head_description(self, backbone: Any, options: Any, dropout: float) -> dict[str, Any]:
        """The tagger's description with its ``encoder`` (``task.encoder``; unset: the backbone family's usual),
        ``lstm_dim`` (with a biLSTM) and ``crf`` (``task.crf``; unset: on with a biLSTM only).

        Raises:
            UserError: class weights with a CRF (its loss is a whole sentence's likelihood, not per word).
        """
        encoder = self.options.encoder or backbone.family.tagger_encoder  # ELMo's paper: a biLSTM; HF: linear
        crf = encoder == "bilstm" if self.options.crf is None else self.options.crf
        if crf and options.class_weights not in (None, "none"):
            raise UserError(
                f"finetune.class_weights={options.class_weights} weights each word's loss, but with a CRF "
                "the loss is a whole sentence's likelihood; set finetune.class_weights=none or "
                "task.crf=false."
            )
        own = {"encoder": encoder, "crf": crf, **({"lstm_dim": self.options.lstm_dim} if encoder == "bilstm" else {})}
        return {**super().head_description(backbone, options, dropout), **own}

    def allowed_transitions(self) -> list[list[bool]]:
        """The tag transitions ``data.scheme`` allows (no ``O`` -> ``I-X`` under BIO), for a CRF."""
        return allowed_transitions(self.labels, self.cfg.scheme)

    def meta(self) -> dict[str, Any]:
        """Labels, scheme and window length for `lmtrain predict`."""
        return {**super().meta(), "scheme": self.cfg.scheme, "max_seq_len": self.cfg.max_seq_len}

    def predict(
        self, model, tokenizer, lines: list[str], batch_size: int, device: torch.device, **options: Any
    ) -> list[dict[str, Any]]:
        """Words, tags and entities (type, character and word spans) of each line."""
        spans = [split_words(line) for line in lines]
        windows = make_windows(tokenizer, [[w for w, _, _ in s] for s in spans], self.cfg.max_seq_len)
        examples = [{"input_ids": w.input_ids, "first_subword": (w.word_index >= 0).astype(np.int64)} for w in windows]
        predicted: list[np.ndarray] = [np.zeros(0)] * len(windows)
        tagger = model.heads[self.head]

        def forward(b):
            selected = b["first_subword"].bool()  # (B, T)
            out = torch.zeros_like(b["input_ids"])
            out[selected] = best_tags(tagger, tag_scores(model, b), selected)
            return out

        for chunk, ids in run_batches(model, examples, tokenizer.id("pad"), batch_size, device, forward):
            for row, i in enumerate(chunk):
                predicted[i] = ids[row, : len(windows[i].input_ids)]
        words = words_from_windows(windows, predicted, [len(s) for s in spans], default=0)
        records = []
        for line, span, tag_ids in zip(lines, spans, words):
            tags = [self.labels[i] for i in tag_ids]
            entities = [
                {
                    "type": kind,
                    "start": span[a][1],
                    "end": span[b][2],
                    "text": line[span[a][1] : span[b][2]],
                    "word_start": a,
                    "word_end": b + 1,
                }
                for kind, a, b in entity_spans(tags)
            ]
            records.append({"text": line, "words": [w for w, _, _ in span], "tags": tags, "entities": entities})
        return records

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        """``TYPE start:end text`` per entity, tab separated (an empty line when there is none)."""
        return "\t".join(f"{e['type']} {e['start']}:{e['end']} {e['text']}" for e in record["entities"])
