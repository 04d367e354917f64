"""Schemas of the `task` group of `lmtrain finetune`: one per task, each extending :class:`TaskConfig`;
and of the `task` node of `lmtrain predict`: one per task, each extending :class:`PredictOptions`.

``_target_`` names the task's plug (a :class:`lmtrain.tasks.base.Task` subclass), which reads its
data, builds its head and objective, owns its metrics and baselines, and names its predict schema
(``predict_config``): a key only one task reads lives in that task's schema, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from lmtrain.config.checks import ConfigRangeError, check_range

# what a tagger may put between the features and its output (lmtrain.models.heads.TokenClassifierHead)
TAGGER_ENCODERS = ("linear", "bilstm")


@dataclass
class TaskConfig:
    """What every fine-tuning task has.

    Attributes:
        UNREAD_FINETUNE: the ``finetune.*`` options this task does not read, each with why (its end of a sentence):
            a value given for one is refused before the run starts. A task of your own declares its own.
    """

    UNREAD_FINETUNE: ClassVar[dict[str, str]] = {}

    _target_: str = ""  # the task's plug class (set by each task's schema)
    name: str = ""  # shown in run names and listings, recorded in model.json
    # optimizer steps by backbone (bert, roberta, gpt, elmo ...; `default` for the others) while
    # trainer.max_steps is null: what a task needs can depend on what trains (a frozen ELMo's task model)
    max_steps_by_backbone: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for backbone, steps in self.max_steps_by_backbone.items():
            if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
                raise ConfigRangeError(f"max_steps_by_backbone.{backbone}", ">= 1", steps)


@dataclass
class NerTaskConfig(TaskConfig):
    """Named-entity recognition: one tag per word, entity-level F1 (seqeval)."""

    _target_: str = "lmtrain.tasks.ner.NerTask"
    name: str = "ner"
    # a linear-chain CRF over the word tags (Viterbi decoding); null = with a biLSTM task encoder only
    crf: Optional[bool] = None
    # between the features and the tag scores: linear | bilstm (the task's own biLSTM); null = the backbone
    # family's usual (bilstm over ELMo's features, as in the paper; linear over a Transformer, as Hugging Face)
    encoder: Optional[str] = None
    lstm_dim: int = 128  # cells per direction of the task biLSTM (encoder=bilstm)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder not in (None, *TAGGER_ENCODERS):
            raise ConfigRangeError("encoder", f"one of {', '.join(TAGGER_ENCODERS)} (or null)", self.encoder)
        check_range(self, "lstm_dim", 1)


@dataclass
class ClassificationTaskConfig(TaskConfig):
    """Sequence classification: one label per text (or text pair), accuracy and F1."""

    _target_: str = "lmtrain.tasks.classification.ClassificationTask"
    name: str = "classification"


@dataclass
class GenerationTaskConfig(TaskConfig):
    """Prompt -> completion with a causal LM; loss on the completion only."""

    UNREAD_FINETUNE: ClassVar[dict[str, str]] = {
        "class_weights": "the completion loss has no classes to weight",
        "head_dropout": "generation keeps the backbone's language-model head and adds no task head",
    }

    _target_: str = "lmtrain.tasks.completion.CompletionTask"
    name: str = "generation"
    samples: int = 5  # held-out prompts decoded greedily into summary.json
    max_new_tokens: int = 40  # tokens decoded per sample prompt

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "samples", 0)
        check_range(self, "max_new_tokens", 1)


@dataclass
class RetrievalTaskConfig(TaskConfig):
    """Image-text retrieval with ALBEF: recall@1/5/10 both ways, matching-head re-ranking."""

    UNREAD_FINETUNE: ClassVar[dict[str, str]] = {
        "freeze_backbone": "retrieval fine-tunes the whole ALBEF model",
        "freeze_layers": "retrieval fine-tunes the whole ALBEF model",
        "head_lr": "ALBEF's matching head and projections learn at optim.lr with its encoders",
        "class_weights": "the contrastive and matching losses have no classes to weight",
        "head_dropout": "retrieval adds no task head to ALBEF",
    }

    _target_: str = "lmtrain.tasks.retrieval.RetrievalTask"
    name: str = "retrieval"
    alpha: float = 0.4  # momentum distillation weight (ramped up over the first epoch)
    hard_negatives: bool = True  # ITM negatives sampled by contrastive similarity
    rerank_k: int = 16  # contrastive candidates re-ranked by the matching head at evaluation
    queue_start: int = 0  # optimizer steps before queued features join the contrastive loss
    vision_init: Optional[str] = None  # ALBEF run whose image encoder starts a text-only init (None = random)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("rerank_k", "queue_start"):
            check_range(self, name, 0)
        check_range(self, "alpha", 0, 1)


@dataclass
class PredictOptions:
    """`task.*` of `lmtrain predict`: what a task reads when it predicts; a task with options of its own extends
    this schema and names it in its ``predict_config`` (none here: every task predicts without one)."""


@dataclass
class GenerationPredictConfig(PredictOptions):
    """`lmtrain predict` with a prompt -> completion run: greedy completions."""

    max_new_tokens: int = 40  # tokens decoded per input line

    def __post_init__(self) -> None:
        check_range(self, "max_new_tokens", 1)


@dataclass
class RetrievalPredictConfig(PredictOptions):
    """`lmtrain predict` with an ALBEF run: rank images for captions, or captions for images."""

    images: Optional[str] = None  # folder of images to rank for each caption of `input`
    captions: Optional[str] = None  # file of captions (one per line) to rank for each image of `input`
    top_k: int = 5  # matches listed per query

    def __post_init__(self) -> None:
        check_range(self, "top_k", 1)
