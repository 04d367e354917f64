"""A pretraining objective as a plug: everything lmtrain needs to know about it, in one class.

`lmtrain pretrain` builds the objective named by ``objective._target_`` (its schema sets it) and
asks it for its examples, its loss, its baselines and what to run next; nothing else tests an
objective's name. A user's own objective subclasses :class:`PretrainingObjective` (usually
:class:`lmtrain.objectives.text_objectives.TextPretraining`) in their own package, with a YAML
that names it: see ``examples/span_masking``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from lmtrain.config.commands import PretrainConfig
from lmtrain.config.objectives import ObjectiveConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability, in_words
from lmtrain.objectives.base import Objective
from lmtrain.shell_words import command, override


@dataclass
class PretrainingSets:
    """The examples an objective trains and evaluates on.

    Attributes:
        tokenizer: the run's tokenizer.
        train_set, eval_set: the datasets.
        collate: pads a list of examples into a batch.
        description: the data part of the run's log line (``1234 train / 56 held-out sequences``).
        summary: data facts for summary.json (``data``, ``train_pairs`` ...).
        extra: what the objective keeps for building its loss and baselines.
        digests: what -> digest of the prepared data (example stores) that every rank must hold alike.
    """

    tokenizer: TextTokenizer
    train_set: Dataset
    eval_set: Dataset
    collate: Callable
    description: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)


class PretrainingObjective:
    """Base class of pretraining objective plugs.

    Attributes:
        config_class: the objective's schema (types a user's YAML that names this class in ``_target_``).
        data_config: the schema of the ``data`` it reads (types a saved config's ``data`` node).
        needs: what the model must have for this objective to train it (any family that has it will do).
    """

    config_class: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    data_config: ClassVar[type | None] = None
    needs: ClassVar[Capability] = Capability.MASKED_LM

    def __init__(self, cfg: ObjectiveConfig):
        self.cfg = cfg

    @property
    def name(self) -> str:
        """The objective's name (``objective.name``), shown in run names and model.json."""
        return self.cfg.name

    def settings(self) -> dict[str, Any]:
        """Every setting of the objective as plain values (the example cache key; model.json)."""
        return dataclasses.asdict(self.cfg)

    def check(self, have: Collection[Capability], model: str, max_seq_len: int) -> None:
        """Refuse a model that lacks what this objective needs, or sequences too short for a target.

        Args:
            have: the model's capabilities.
            model: the model in words, for the message (``model=gpt (transformer family)``).
        Raises:
            UserError: naming the capability, what the model has, and what to choose instead.
        """
        if self.needs not in have:
            raise UserError(
                f"objective={self.name} needs {self.needs.words}, which the chosen model {model} lacks (it "
                f"has {in_words(have)}); choose an objective for what it has, or a model with "
                f"{self.needs.words} (e.g. `{self.needs.example} objective={self.name}`)."
            )
        least, reason = self.min_seq_len()
        if max_seq_len < least:
            raise UserError(
                f"data.max_seq_len={max_seq_len} is too short for objective={self.name}: it needs >= "
                f"{least} ({reason})."
            )

    def check_model(self, model: Any, key: str) -> None:
        """Refuse a loaded model this objective cannot train (``key`` named it); default: any model that has
        :attr:`needs`."""

    def unread_data_keys(self) -> dict[str, str]:
        """The ``data`` keys that this objective does not use -> who reads them, in words (a value given for
        one is refused); default: none."""
        return {}

    def min_seq_len(self) -> tuple[int, str]:
        """The shortest ``data.max_seq_len`` that gives a training target, and why."""
        return 2, "a next-token target needs at least two tokens"

    def prepare(self, cfg: PretrainConfig, context: Any) -> PretrainingSets:
        """Read, tokenize and encode ``cfg.data`` into training and held-out examples.

        Args:
            cfg: the pretrain config (``data``, ``tokenizer``, ``model``, ``trainer``).
            context: the run context (device, ranks, run directory; see ``training.assembly``).
        """
        raise NotImplementedError

    def head_names(self) -> tuple[str, ...]:
        """Pretraining heads the model needs (``mlm``, ``nsp``, ``lm`` ...)."""
        raise NotImplementedError

    def loss(self, sets: PretrainingSets, steps_per_epoch: int) -> Objective:
        """The objective the Trainer calls on every batch."""
        raise NotImplementedError

    def baselines(self, sets: PretrainingSets) -> dict[str, float]:
        """Held-out scores of a trivial predictor (``baseline/<metric>``), for summary.json."""
        return {}

    def next_commands(self, run: Path) -> list[str]:
        """What a user runs next with a run trained by this objective."""
        return [command("evaluate", override("ckpt", run))]
