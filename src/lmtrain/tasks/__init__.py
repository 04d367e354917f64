"""Fine-tuning tasks: readers of labelled data, label alignment, task datasets and metrics.

Each task (``ner``, ``classification``, ``generation``, ``retrieval``) is one class with the same small surface
(see :class:`lmtrain.tasks.base.Task`), so `lmtrain finetune` and `lmtrain predict` build every
task the same way, top to bottom.
"""

from __future__ import annotations

from lmtrain.errors import UserError

TASKS = ("ner", "classification", "generation", "retrieval")


def build_task(name: str, data_cfg, labels: list[str] | None = None):
    """The task called ``name`` reading with ``data_cfg`` (labels: those of a fine-tuned checkpoint).

    Raises:
        UserError: an unknown task name.
    """
    if name == "ner":
        from lmtrain.tasks.ner import NerTask

        return NerTask(data_cfg, labels)
    if name == "classification":
        from lmtrain.tasks.classification import ClassificationTask

        return ClassificationTask(data_cfg, labels)
    if name == "generation":
        from lmtrain.tasks.completion import CompletionTask

        return CompletionTask(data_cfg)
    if name == "retrieval":
        from lmtrain.tasks.retrieval import RetrievalTask

        return RetrievalTask(data_cfg)
    raise UserError(f"task={name} is not a fine-tuning task; choose one of {', '.join(TASKS)}.")
