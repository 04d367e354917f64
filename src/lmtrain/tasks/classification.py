"""Sentence and sentence-pair classification (SST-2, MRPC style): accuracy, macro-F1, positive-class F1."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import torch

from lmtrain.config.data import ClassificationDataConfig
from lmtrain.config.tasks import ClassificationTaskConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.heads import PooledClassifierHead
from lmtrain.objectives.base import states_for_head
from lmtrain.objectives.metrics import class_weights, classification_scores
from lmtrain.objectives.sequence_classification import SequenceClassification
from lmtrain.tasks.alignment import frame_ids
from lmtrain.tasks.base import Task, TaskDataset, by_length, run_batches
from lmtrain.tasks.files import file_format
from lmtrain.tasks.tabular import LabelledText, read_fasttext, read_labelled_jsonl, read_labelled_split, read_table

log = logging.getLogger(__name__)
_POSITIVE_NAMES = ("1", "pos", "positive", "true", "yes", "entailment", "equivalent")


def label_order(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order, others alphabetically."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def frame_pair(tokenizer, a: list[int], b: list[int] | None, max_len: int) -> tuple[list[int], list[int], bool]:
    """[CLS] a [SEP] (b [SEP]) ids and segment ids, longest-first truncated to ``max_len``; True if cut.

    RoBERTa-style tokenizers (<s> as cls) separate the pair with two </s>, as RoBERTa was trained.
    """
    before, after = frame_ids(tokenizer)
    middle = after * (2 if b is not None and before and tokenizer.roles.get("cls") == "<s>" else 1)
    overhead = len(before) + len(after) + (len(middle) if b is not None else 0)
    a, b = list(a), list(b) if b is not None else None
    cut = False
    while len(a) + (len(b) if b is not None else 0) > max_len - overhead:
        cut = True
        if b is not None and len(b) > len(a):
            b.pop()
        else:
            a.pop()
    ids = before + a + (middle + b + after if b is not None else after)
    segments = [0] * (len(before) + len(a) + len(middle if b is not None else after))
    segments += [1] * (len(ids) - len(segments))
    return ids, segments, cut


class ClassificationTask(Task):
    """One label per text (or text pair) with the ``classifier`` head.

    Args:
        data_cfg: the ``data`` config (files, format, columns).
        labels: the label list of a fine-tuned checkpoint (prediction), or None to read it from training data.
    """

    name, head, head_class, causal = "classification", "classifier", PooledClassifierHead, False
    predict_example = "a gripping , funny and moving film ."
    config_class, data_config = ClassificationTaskConfig, ClassificationDataConfig
    cfg: ClassificationDataConfig  # a task is built with its own data_config (the finetune config types `data` with it)

    def _read(self, path, key: str) -> list[LabelledText]:
        fmt = file_format(path, self.cfg.format, "tsv")
        if fmt in ("tsv", "csv"):
            examples = read_table(path, fmt, self.cfg, key)
        elif fmt == "jsonl":
            examples = read_labelled_jsonl(path, self.cfg, key)
        elif fmt == "fasttext":
            examples = read_fasttext(path, key)
        else:
            raise UserError(f"{key}: task=classification reads tsv, csv, jsonl or fasttext files, not {fmt}.")
        if not examples:
            raise UserError(f"{key}: {path} holds no examples.")
        return examples

    def _read_split(self, split, key: str) -> list[LabelledText]:
        examples = read_labelled_split(split, self.cfg, key)
        if not examples:
            raise UserError(f"{key}: {split.where} holds no examples.")
        return examples

    def read(self) -> None:
        """Read train / held-out examples; the label set comes from the training data."""
        train_path = self._read_splits()
        self.labels = label_order({e.label for e in self.train})
        if len(self.labels) < 2:
            raise UserError(
                f"{self.train_key}: {train_path} has a single label ({self.labels[0]}); "
                "classification needs at least two. Check data.label_column."
            )
        for example in self.eval:
            if example.label not in self.labels:
                raise UserError(
                    f"{self.eval_key}: line {example.line}: label '{example.label}' does not occur in the "
                    f"training data ({train_path}); training labels: {', '.join(self.labels)}."
                )

    @property
    def positive(self) -> int | None:
        """Id of the class whose F1 is reported for binary tasks."""
        if len(self.labels) != 2:
            return None
        if self.cfg.positive_label is not None:
            if str(self.cfg.positive_label) not in self.labels:
                raise UserError(
                    f"data.positive_label={self.cfg.positive_label} is not a label; labels: {', '.join(self.labels)}."
                )
            return self.labels.index(str(self.cfg.positive_label))
        named = [i for i, label in enumerate(self.labels) if label.lower() in _POSITIVE_NAMES]
        return named[0] if named else 1

    def texts(self) -> list[str]:
        """Every training text (both texts of pairs)."""
        return [t for e in self.train for t in (e.text, e.text_pair) if t]

    def encode(self, tokenizer, pairs: list[tuple[str, str | None]], max_seq_len: int) -> list[dict[str, Any]]:
        """Framed ids and segment ids of (text, text_pair) inputs."""
        first = tokenizer.encode_batch([a for a, _ in pairs])
        second = iter(tokenizer.encode_batch([b for _, b in pairs if b is not None]))  # none for single texts
        examples, cut = [], 0
        for (_, b), ids_a in zip(pairs, first):
            ids, segments, was_cut = frame_pair(tokenizer, ids_a, next(second) if b is not None else None, max_seq_len)
            cut += was_cut
            examples.append(
                {"input_ids": np.asarray(ids, dtype=np.int64), "token_type_ids": np.asarray(segments, dtype=np.int64)}
            )
        if cut:
            log.warning(
                "%d of %d inputs were longer than data.max_seq_len=%d tokens and were truncated (longest text first)",
                cut,
                len(pairs),
                max_seq_len,
            )
        return examples

    def _dataset(self, examples: list[LabelledText], tokenizer, max_seq_len: int) -> list[dict[str, Any]]:
        encoded = self.encode(tokenizer, [(e.text, e.text_pair) for e in examples], max_seq_len)
        return [{**x, "label": self.labels.index(e.label)} for x, e in zip(encoded, examples)]

    def example_inputs(self) -> Any:
        """The texts, second texts and labels of the train and held-out examples (what :meth:`datasets` encodes)."""
        return [[[e.text, e.text_pair, e.label] for e in examples] for examples in (self.train, self.eval)]

    def datasets(self, tokenizer, max_seq_len: int) -> tuple[TaskDataset, TaskDataset]:
        """Encoded train / held-out examples."""
        return (
            TaskDataset(self._dataset(self.train, tokenizer, max_seq_len)),
            TaskDataset(by_length(self._dataset(self.eval, tokenizer, max_seq_len))),
        )

    def objective(self, weights: Any) -> SequenceClassification:
        """Sequence classification over this task's labels."""
        counts = Counter(self.labels.index(e.label) for e in self.train)
        return SequenceClassification(self.labels, self.positive, class_weights(counts, len(self.labels), weights))

    def baselines(self, tokenizer: TextTokenizer | None = None) -> dict[str, float]:
        """Scores of always predicting the most frequent training label."""
        majority = Counter(e.label for e in self.train).most_common(1)[0][0]
        gold = [self.labels.index(e.label) for e in self.eval]
        scores = classification_scores(gold, [self.labels.index(majority)] * len(gold), len(self.labels), self.positive)
        return {f"baseline/majority_{k}": v for k, v in scores.items()}

    def meta(self) -> dict[str, Any]:
        """Labels, positive class, pair input and length for `lmtrain predict`."""
        return {
            **super().meta(),
            "positive": self.positive,
            "pair": self.cfg.text_pair_column is not None,
            "max_seq_len": self.cfg.max_seq_len,
        }

    def predict(
        self, model, tokenizer, lines: list[str], batch_size: int, device: torch.device, **options: Any
    ) -> list[dict[str, Any]]:
        """Label and class probabilities of each line (``text<TAB>text_pair`` for pair classifiers)."""
        pair = options.get("pair", False)
        inputs: list[tuple[str, str | None]] = []
        for line in lines:
            first, tab, second = line.partition("\t")
            inputs.append((first, second) if pair and tab else (line, None))
        examples = self.encode(tokenizer, inputs, self.cfg.max_seq_len)
        probs = np.zeros((len(lines), len(self.labels)))
        head = model.heads[self.head]

        def forward(b):
            return head(states_for_head(model, b, head), b["attention_mask"]).softmax(-1)

        for chunk, p in run_batches(model, examples, tokenizer.id("pad"), batch_size, device, forward):
            probs[chunk] = p
        records = []
        for (text, text_pair), p in zip(inputs, probs):
            best = int(p.argmax())
            record = {
                "text": text,
                "label": self.labels[best],
                "score": float(p[best]),
                "scores": {label: float(v) for label, v in zip(self.labels, p)},
            }
            if text_pair is not None:
                record["text_pair"] = text_pair
            records.append(record)
        return records

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        """``label<TAB>probability``."""
        return f"{record['label']}\t{record['score']:.4f}"
