"""Fine-tuning tasks: readers of labelled data, label alignment, task datasets and metrics.

Each task is a plug: one :class:`lmtrain.tasks.base.Task` subclass, named by ``task._target_``
(its schema sets it), with the same small surface, so `lmtrain finetune` and `lmtrain predict`
build every task the same way, top to bottom, and a task of your own needs no edit here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lmtrain.config.data import TaskDataConfig
from lmtrain.config.tasks import TaskConfig

# task name -> plug, for checkpoints written before model.json recorded the task's class
_EARLIER_CHECKPOINTS = {
    "ner": "lmtrain.tasks.ner.NerTask",
    "classification": "lmtrain.tasks.classification.ClassificationTask",
    "generation": "lmtrain.tasks.completion.CompletionTask",
    "retrieval": "lmtrain.tasks.retrieval.RetrievalTask",
}


def build_task(task: TaskConfig | str, data_cfg: TaskDataConfig, labels: list[str] | None = None):
    """The task plug ``task`` names, given its own typed config, reading with ``data_cfg`` (labels: those of a
    fine-tuned checkpoint).

    Args:
        task: the ``task`` config (its plug's ``config_class``), or a ``_target_`` path (the task's defaults).
        data_cfg: the task's ``data`` config.
        labels: the label names of a fine-tuned checkpoint (None: read from the data).
    Raises:
        UserError: a ``_target_`` that does not import or is not a Task.
    """
    from lmtrain.plugs import plug_class
    from lmtrain.tasks.base import Task

    cls: Any = plug_class(task, "task", Task)
    return cls(data_cfg, labels, options=None if isinstance(task, str) else _options(cls, task))


def _options(cls: Any, task: Any) -> Any:
    """``task`` as an instance of ``cls.config_class`` (a config node or dict is built into it)."""
    if isinstance(task, cls.config_class):
        return task
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        task = dataclasses.asdict(task)
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.config_class), task))


def task_from_meta(info: dict[str, Any], **data_values: Any):
    """The task of a fine-tuned checkpoint's ``model.json`` (``task`` entry), its data config holding
    ``data_values`` (sequence length, tag scheme ...) over the task's defaults, its own config the entry's
    values of its keys (``rerank_k`` ...) over its defaults."""
    from lmtrain.plugs import plug_class
    from lmtrain.tasks.base import Task

    cls: Any = plug_class(info.get("_target_") or _EARLIER_CHECKPOINTS.get(str(info.get("name")), ""), "task", Task)
    fields = {f.name for f in dataclasses.fields(cls.data_config)}
    own = {f.name for f in dataclasses.fields(cls.config_class) if f.init} - {"_target_", "name"}
    options = cls.config_class(**{k: v for k, v in info.items() if k in own})
    return cls(cls.data_config(**{k: v for k, v in data_values.items() if k in fields}), info.get("labels"), options)
