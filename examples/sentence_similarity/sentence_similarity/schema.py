"""The task's three schemas: its `task.*` keys, its `data.*` keys, and its `task.*` keys of `lmtrain predict`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lmtrain.config.checks import check_range
from lmtrain.config.data import TaskDataConfig
from lmtrain.config.tasks import PredictOptions, TaskConfig


@dataclass
class SimilarityTaskConfig(TaskConfig):
    """Sentence-pair similarity: a score per pair (STS-B style), Pearson and Spearman correlation."""

    # refused before a run starts when given (the default TaskConfig declares none)
    UNREAD_FINETUNE: ClassVar[dict[str, str]] = {"class_weights": "a similarity score has no classes to weight"}

    _target_: str = "sentence_similarity.SimilarityTask"
    name: str = "similarity"
    max_score: float = 5.0  # scores lie in [0, max_score]; the head's output is squashed into that range

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "max_score", 0, low_open=True)


@dataclass
class SimilarityDataConfig(TaskDataConfig):
    """Tab-separated lines `sentence1<TAB>sentence2<TAB>score` (a first line that has no number is a header)."""


@dataclass
class SimilarityPredictConfig(PredictOptions):
    """`lmtrain predict` with a similarity run: one `sentence1<TAB>sentence2` pair per input line."""

    decimals: int = 2  # digits after the point of the printed score

    def __post_init__(self) -> None:
        check_range(self, "decimals", 0, 6)
