"""What every fine-tuning task provides, and the pieces they share (dataset, batched inference)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lmtrain.config.commands import FinetuneConfig, FinetuneOptions
from lmtrain.config.data import TaskDataConfig
from lmtrain.config.tasks import PredictOptions, TaskConfig
from lmtrain.data.collate import PadCollator
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.heads import TaskHead
from lmtrain.models.protocol import NamedHeads
from lmtrain.objectives.base import Objective
from lmtrain.training.evaluation import EvaluationSet
from lmtrain.training.train_batches import TrainingSet


class TaskDataset(Dataset):
    """Encoded examples in memory (fine-tuning sets are small); ``set_epoch`` is a no-op."""

    def __init__(self, examples: list[dict[str, Any]]):
        self.examples = examples

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes between epochs (the trainer calls this for every dataset)."""

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self.examples[index])

    @property
    def lengths(self) -> np.ndarray:
        """Tokens of each example: the trainer batches similar lengths together."""
        return np.asarray([len(e["input_ids"]) for e in self.examples])


def by_length(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Examples sorted by length: evaluation batches then hold similar lengths and little padding."""
    return sorted(examples, key=lambda e: len(e["input_ids"]))


@torch.no_grad()
def run_batches(
    model: torch.nn.Module,
    examples: list[dict[str, Any]],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Run ``forward`` over ``examples`` in length-sorted batches.

    Yields:
        (indices of the examples in the batch, ``forward``'s output for them as a numpy array).
    """
    model.eval()
    collate = PadCollator(pad_id)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in chunk]).items()}
        yield chunk, forward(batch).float().cpu().numpy()


@dataclass
class TaskModel:
    """The model a fine-tuning run trains, with its tokenizer and where its weights came from.

    Attributes:
        model: the model (on the CPU), built alike on every rank.
        tokenizer: its tokenizer.
        source: where the weights came from (a run, a Hugging Face folder, scratch).
        model_name: bert | roberta | gpt | elmo | albef (``model.json``'s ``model_name``).
        max_positions: the longest input the model takes (None: no limit).
        head_lr: learning rate of the task head (None = ``optim.lr``).
    """

    model: NamedHeads
    tokenizer: TextTokenizer
    source: str
    model_name: str
    max_positions: int | None
    head_lr: float | None = None


class Task:
    """A fine-tuning task: reads its data, encodes it, builds its model, and names its objective and metrics.

    Args:
        data_cfg: the ``data`` config (an instance of :attr:`data_config`).
        labels: the label names of a fine-tuned checkpoint (prediction), or None to read them from the data.
        options: the ``task`` config (an instance of :attr:`config_class`; None = its defaults).

    Attributes:
        name: ner | classification | generation | retrieval (a task of your own: its name).
        options: the task's own typed config (``task.*``).
        head: name of the task head in the model (None: the language-model head ``lm``).
        head_class: the :class:`lmtrain.models.heads.TaskHead` under ``head``: a built-in one, or the task's own.
        causal: needs a causal LM backbone (True) or a bidirectional encoder (False).
        labels: label names, read from the training data (or a checkpoint).
    """

    name = ""
    config_class: type = TaskConfig  # the task's schema (types a user's YAML that names this class in _target_)
    data_config: type = TaskDataConfig  # the schema of its `data` node
    predict_config: type = PredictOptions  # the schema of the `task.*` keys of `lmtrain predict`
    predict_example: str | None = None  # one input line that the next-step hint pipes into `lmtrain predict`
    head: str | None = None
    head_class: type[TaskHead] | None = None
    causal = False
    labels: list[str] = []

    def __init__(self, data_cfg: TaskDataConfig, labels: list[str] | None = None, options: TaskConfig | None = None):
        self.cfg = data_cfg
        self.options = options if options is not None else self.config_class()
        self.labels = list(labels or [])
        self.train: list = []
        self.eval: list = []

    @property
    def head_kind(self) -> str | None:
        """The ``kind`` that ``model.json`` records for the head (None: the task has no head of its own)."""
        return self.head_class.kind_name() if self.head_class is not None else None

    def head_description(self, backbone: Any, options: FinetuneOptions, dropout: float) -> dict[str, Any]:
        """The JSON description of the task's head (``model.json`` keeps it; ``head_class.from_description``
        rebuilds the head from it): ``kind``, ``n_classes`` and ``dropout``, plus what the task's head adds.

        Args:
            backbone: the :class:`lmtrain.tasks.backbone.Backbone` under the head.
            options: ``finetune.*``.
            dropout: the head's dropout (``finetune.head_dropout``, else the backbone's).
        Raises:
            UserError: a task option that does not fit the backbone or ``finetune.*``.
        """
        return {"kind": self.head_kind, "n_classes": len(self.labels), "dropout": dropout}

    @classmethod
    def predict_options(cls, values: Any) -> Any:
        """``values`` (the ``task.*`` keys given to `lmtrain predict`) typed by :attr:`predict_config`.

        Raises:
            UserError: a key this task's predict schema lacks (it would be ignored), or a value out of range.
        """
        from lmtrain.tasks.prediction_io import typed_predict_options

        return typed_predict_options(cls.predict_config, values, cls.name)

    def _read(self, path, key: str) -> list:
        """The examples of one file (``key`` names the config key in errors)."""
        raise NotImplementedError

    def _read_split(self, split, key: str) -> list:
        """The examples of one `datasets` split (:class:`lmtrain.data.hf_datasets.HfSplit`; data.source=hf)."""
        raise UserError(f"task={self.name} reads files; data.source=hf serves ner, classification and generation.")

    @property
    def train_key(self) -> str:
        """The option that names the training data (quoted in errors about it)."""
        return "data.train_split" if self.cfg.source == "hf" else "data.train_file"

    @property
    def eval_key(self) -> str:
        """The option that names the held-out data (quoted in errors about it)."""
        return "data.eval_split" if self.cfg.source == "hf" else "data.eval_file"

    def _read_sources(self) -> tuple[list, list | None, str]:
        """(train examples, held-out examples or None, where the training data is) from files or a dataset."""
        from lmtrain.tasks.files import data_files, hf_splits

        if self.cfg.source == "hf":
            train_split, eval_split = hf_splits(self.cfg)
            held_out = self._read_split(eval_split, self.eval_key) if eval_split is not None else None
            return self._read_split(train_split, self.train_key), held_out, train_split.where
        if self.cfg.source != "files":
            raise UserError(
                f"data.source={self.cfg.source} is not supported; use files (data.train_file) or hf "
                "(data.path: a datasets dataset)."
            )
        train_paths, eval_paths = data_files(self.cfg)
        train = [e for path in train_paths for e in self._read(path, self.train_key)]
        held_out = [e for path in eval_paths for e in self._read(path, self.eval_key)] if eval_paths else None
        return train, held_out, ", ".join(map(str, train_paths))

    def _read_splits(self) -> str:
        """Fill ``self.train`` / ``self.eval`` from the data (or a held-out share); returns where the train data is."""
        from lmtrain.tasks.files import hold_out

        self.train, held_out, where = self._read_sources()
        if self.cfg.max_examples:
            self.train = self.train[: self.cfg.max_examples]
        if held_out is not None:
            self.eval = held_out
        else:
            self.train, self.eval = hold_out(self.train, self.cfg.eval_fraction, self.cfg.split_seed, where)
        return where

    def read(self) -> None:
        """Read and check the training and held-out data (``self.train`` / ``self.eval``)."""
        self._read_splits()

    def texts(self) -> list[str]:
        """Training text (a scratch tokenizer is trained on it)."""
        raise NotImplementedError

    def predict_command(self, run: Path) -> str:
        """The next step after fine-tuning: ``lmtrain predict`` on :attr:`predict_example` (a comment saying what
        to give, for a task without one)."""
        from lmtrain.shell_words import command, comment, override

        predict = command("predict", override("ckpt", run))
        if self.predict_example is None:
            return comment(f"{predict} input=FILE  (a text file, one input per line)")
        return f"echo {shlex.quote(self.predict_example)} | {predict} input=-"

    def newest_backbone(self) -> Any:
        """The newest pretrain run of this project that this task can start from (``init`` not given), as an
        :class:`lmtrain.tasks.backbone.InitChoice`.

        Raises:
            UserError: there is none.
        """
        from lmtrain.tasks.backbone import newest_pretrain_run

        return newest_pretrain_run(self.causal)

    def build_model(self, cfg: FinetuneConfig, context: Any) -> TaskModel:
        """The model to fine-tune: the backbone ``cfg.init`` names under this task's head (partly frozen if asked).

        Args:
            cfg: the finetune config.
            context: the run's :class:`lmtrain.training.assembly.RunContext` (a scratch tokenizer is
                trained once, by rank 0).
        """
        from lmtrain.tasks.model import build_task_model

        return build_task_model(self, cfg, context)

    def datasets(self, tokenizer, max_seq_len: int) -> tuple[TrainingSet, EvaluationSet]:
        """Encoded (train, held-out) datasets (a task's own are usually :class:`TaskDataset`)."""
        raise NotImplementedError

    def example_inputs(self) -> Any:
        """What :meth:`datasets` encodes, as JSON-able values (lists, strings, numbers), beyond the tokenizer,
        ``data.max_seq_len``, :attr:`labels`, ``task.*`` and ``data.*``; None (the default): the examples are
        encoded at every run.

        A task that returns them has its :class:`TaskDataset` examples (integers, floats, 1-D numeric arrays) kept in
        the data cache under a hash of all of those (:mod:`lmtrain.tasks.example_cache`): return everything the
        encoding reads from the task's data, or a later run reads examples of other data.
        """
        return None

    def collator(self, tokenizer: TextTokenizer) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
        """Pads a list of examples into a batch."""
        return PadCollator(tokenizer.id("pad"))

    def objective(self, class_weights: Any) -> Objective:
        """The training objective; ``class_weights`` is ``finetune.class_weights``."""
        raise NotImplementedError

    def baselines(self, tokenizer: TextTokenizer) -> dict[str, float]:
        """Held-out scores of trivial predictors (majority class, all-O, unigram ...), as ``baseline/<metric>``.

        Args:
            tokenizer: the run's tokenizer (token-level baselines count its tokens).
        """
        return {}

    def describe_data(self) -> dict[str, Any]:
        """Summary entries about the data beyond its metrics (the label names)."""
        return {"labels": list(self.labels)}

    def allowed_transitions(self) -> list[list[bool]] | None:
        """Which label may follow which (``[i][j]``: label i then label j) for a CRF; None = any."""
        return None

    def final_report(self, trainer: Any, tokenizer: TextTokenizer, options: Any) -> dict[str, Any]:
        """Summary entries the task adds after training (e.g. sample outputs of the best checkpoint); default none.

        Args:
            trainer: the run's Trainer (its model, run directory, ``load_weights`` and ``gathered``).
            tokenizer: the run's tokenizer.
            options: the ``task`` config.
        """
        return {}

    def meta(self) -> dict[str, Any]:
        """What `lmtrain predict` needs to use a checkpoint (stored in model.json as ``task``)."""
        cls = type(self)
        return {"name": self.name, "_target_": f"{cls.__module__}.{cls.__qualname__}", "labels": list(self.labels)}

    def predict(
        self, model, tokenizer, lines: list[str], batch_size: int, device: torch.device, **options: Any
    ) -> list[dict[str, Any]]:
        """One JSON-ready record per input line."""
        raise NotImplementedError

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        """A record as one line of plain text."""
        raise NotImplementedError
