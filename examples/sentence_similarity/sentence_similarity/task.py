"""The task plug: reads scored sentence pairs, names its head, objective and baseline, and predicts scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmtrain.errors import UserError
from lmtrain.tasks.base import Task, TaskDataset, by_length, run_batches
from lmtrain.tasks.classification import frame_pair
from sentence_similarity.head import RegressionHead
from sentence_similarity.objective import ScoreRegression
from sentence_similarity.schema import SimilarityDataConfig, SimilarityPredictConfig, SimilarityTaskConfig


@dataclass
class ScoredPair:
    """Two sentences and their similarity score."""

    text: str
    text_pair: str
    score: float


class SimilarityTask(Task):
    """How similar two sentences are, as a score in [0, ``task.max_score``], from the ``regressor`` head."""

    name, head, head_class, causal = "similarity", "regressor", RegressionHead, False
    config_class, data_config, predict_config = SimilarityTaskConfig, SimilarityDataConfig, SimilarityPredictConfig
    predict_example = "a man plays the guitar .\ta man plays a guitar ."

    def _read(self, path, key: str) -> list[ScoredPair]:
        pairs = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split("\t")
            if not line.strip() or (number == 1 and not _is_number(fields[-1])):  # blank, or a header
                continue
            if len(fields) != 3 or not _is_number(fields[2]) or not 0 <= float(fields[2]) <= self.options.max_score:
                raise UserError(
                    f"{key}: {path}, line {number}: expected `sentence1<TAB>sentence2<TAB>score` with a "
                    f"score in [0, {self.options.max_score:g}] (task.max_score); fix the line."
                )
            pairs.append(ScoredPair(fields[0], fields[1], float(fields[2])))
        if not pairs:
            raise UserError(f"{key}: {path} holds no scored pairs.")
        return pairs

    def texts(self) -> list[str]:
        """Both sentences of every training pair (a scratch tokenizer is trained on them)."""
        return [t for p in self.train for t in (p.text, p.text_pair)]

    def encode(self, tokenizer, pairs: list[tuple[str, str]], max_seq_len: int) -> list[dict[str, Any]]:
        """``[CLS] a [SEP] b [SEP]`` ids and segment ids of each pair."""
        examples = []
        firsts, seconds = tokenizer.encode_batch([a for a, _ in pairs]), tokenizer.encode_batch([b for _, b in pairs])
        for ids_a, ids_b in zip(firsts, seconds, strict=True):
            ids, segments, _ = frame_pair(tokenizer, ids_a, ids_b, max_seq_len)
            examples.append(
                {"input_ids": np.asarray(ids, dtype=np.int64), "token_type_ids": np.asarray(segments, dtype=np.int64)}
            )
        return examples

    def _dataset(self, pairs: list[ScoredPair], tokenizer, max_seq_len: int) -> list[dict[str, Any]]:
        encoded = self.encode(tokenizer, [(p.text, p.text_pair) for p in pairs], max_seq_len)
        return [{**x, "score": p.score} for x, p in zip(encoded, pairs, strict=True)]

    def example_inputs(self) -> list[list[list[Any]]]:
        """What :meth:`datasets` encodes (both sentences and the score of every pair): lmtrain keeps the encoded
        pairs in its data cache under a hash of them, the tokenizer and the settings, and a later run reads them."""
        return [[[p.text, p.text_pair, p.score] for p in pairs] for pairs in (self.train, self.eval)]

    def datasets(self, tokenizer, max_seq_len: int) -> tuple[TaskDataset, TaskDataset]:
        """Encoded train / held-out pairs with their scores."""
        return (
            TaskDataset(self._dataset(self.train, tokenizer, max_seq_len)),
            TaskDataset(by_length(self._dataset(self.eval, tokenizer, max_seq_len))),
        )

    def head_description(self, backbone: Any, options: Any, dropout: float) -> dict[str, Any]:
        """The regression head's entries in model.json: its class, dropout and score range."""
        return {"kind": self.head_kind, "dropout": dropout, "max_score": self.options.max_score}

    def objective(self, class_weights: Any) -> ScoreRegression:
        """Squared error; ``finetune.class_weights`` is refused before the run (the schema's ``UNREAD_FINETUNE``)."""
        return ScoreRegression()

    def baselines(self, tokenizer=None) -> dict[str, float]:
        """The squared error of always predicting the training pairs' mean score."""
        mean = float(np.mean([p.score for p in self.train]))
        return {"baseline/mean_loss": float(np.mean([(p.score - mean) ** 2 for p in self.eval]))}

    def describe_data(self) -> dict[str, Any]:
        """The score range (a regression task has no labels)."""
        return {"score_range": [0.0, self.options.max_score]}

    def meta(self) -> dict[str, Any]:
        """What `lmtrain predict` needs: the pair length and the score range."""
        return {**super().meta(), "max_seq_len": self.cfg.max_seq_len, "max_score": self.options.max_score}

    def predict(
        self, model, tokenizer, lines: list[str], batch_size: int, device: torch.device, **options: Any
    ) -> list[dict[str, Any]]:
        """The score of each ``sentence1<TAB>sentence2`` line, rounded to ``task.decimals`` digits."""
        pairs = []
        for number, line in enumerate(lines, start=1):
            if line.count("\t") != 1:
                raise UserError(f"input line {number}: give two sentences separated by one tab.")
            pairs.append(tuple(line.split("\t")))
        scores = np.zeros(len(pairs))
        head = model.heads[self.head]

        def forward(b):
            return head(model.backbone(b["input_ids"], b["attention_mask"], b["token_type_ids"]), b["attention_mask"])

        examples = self.encode(tokenizer, pairs, self.cfg.max_seq_len)
        for chunk, predicted in run_batches(model, examples, tokenizer.id("pad"), batch_size, device, forward):
            scores[chunk] = predicted
        decimals = options.get("decimals", 2)
        return [
            {"text": a, "text_pair": b, "score": round(float(score), decimals)}
            for (a, b), score in zip(pairs, scores, strict=True)
        ]

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        """The score alone."""
        return str(record["score"])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
