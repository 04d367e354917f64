"""How many steps a fine-tuning run trains when ``trainer.max_steps`` is left null: the task preset's
default for the backbone.

What a task needs can depend on what trains: a frozen ELMo's biLSTM-CRF task model learns from
scratch and needs three times the steps of a Transformer tuned whole, so a task preset lists its
steps by backbone (``task.max_steps_by_backbone``, ``default`` for the others) and leaves
``trainer.max_steps`` null. An explicit ``trainer.max_steps`` always wins.
"""

from __future__ import annotations

from typing import Any

from lmtrain.errors import UserError

KEY = "task.max_steps_by_backbone"


def task_max_steps(task_cfg: Any, max_steps: int | None, backbone: str) -> tuple[int, str]:
    """The run's optimizer steps and where they come from (for the plan's first line).

    Args:
        task_cfg: the task's config (``name``, ``max_steps_by_backbone``).
        max_steps: ``trainer.max_steps`` (None = the task's default for the backbone).
        backbone: the backbone's model name (``bert``, ``roberta``, ``gpt``, ``elmo`` ...).

    Raises:
        UserError: ``trainer.max_steps`` is null and the table has neither the backbone nor ``default``.
    """
    if max_steps is not None:
        return max_steps, "trainer.max_steps"
    table = dict(getattr(task_cfg, "max_steps_by_backbone", None) or {})
    name = getattr(task_cfg, "name", "?")
    article = "an" if backbone[:1] in "aeiou" else "a"
    key = backbone if backbone in table else "default"
    if key not in table:
        raise UserError(
            f"trainer.max_steps is null, so task={name} takes its steps from {KEY}, which has no entry "
            f"for {article} {backbone} backbone and no `default` ({table}); give trainer.max_steps=N "
            f"or +{KEY}.{backbone}=N."
        )
    listed = ", ".join(f"{k}: {v}" for k, v in table.items())
    return table[key], (
        f"trainer.max_steps={table[key]}: task={name}'s default for {article} {backbone} backbone, "
        f"from {KEY} {{{listed}}}; give trainer.max_steps=N to choose"
    )
