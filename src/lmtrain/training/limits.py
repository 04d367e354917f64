"""When training stops: ``max_steps``, ``max_epochs`` or ``max_time``, whichever comes first.

The learning-rate schedule is planned over the steps training will really take: ``max_steps``,
or fewer when ``max_epochs`` ends sooner, or, under a time budget, the steps that the pace of the
first steps fits into it, planned once (as cramming plans its schedule for a fixed budget; see
:mod:`lmtrain.training.step_plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# measured steps (after the first, which warms up) before the pace is trusted to plan a time budget
PACE_STEPS = 10


def steps_for_epochs(max_epochs: int, batches_per_epoch: int, grad_accum: int) -> int:
    """Optimizer steps that consume ``max_epochs`` epochs of ``batches_per_epoch`` micro-batches."""
    return math.ceil(max_epochs * batches_per_epoch / grad_accum)


@dataclass
class Limits:
    """The stopping rules of one run.

    Args:
        max_steps: optimizer steps.
        max_epochs: passes over the training data (None = no limit).
        max_time: seconds of training wall time, evaluations and saves included (None = no limit).
        batches_per_epoch: micro-batches of one epoch on this rank.
        grad_accum: micro-batches per optimizer step.
        budget_steps: the steps planned for ``max_time`` once the pace is known (None = not yet).
    """

    max_steps: int
    max_epochs: int | None
    max_time: float | None
    batches_per_epoch: int
    grad_accum: int
    budget_steps: int | None = None

    def steps_in_budget(self, step: int, elapsed: float, pace: float) -> int:
        """The step at which ``max_time`` runs out, at ``pace`` seconds a step from ``step`` after ``elapsed``.

        Only under a time budget (``max_time`` set).
        """
        if self.max_time is None:
            raise ValueError("steps_in_budget needs a time budget (max_time)")
        return max(step, step + int((self.max_time - elapsed) / max(pace, 1e-9)))

    def planned_steps(self, step: int = 0, elapsed: float = 0.0) -> int:
        """The steps training will take, as far as known at ``step`` after ``elapsed`` seconds.

        Once :attr:`budget_steps` is planned it stands for the time budget; before that, a pace
        measured over ``step`` steps (at least :data:`PACE_STEPS`) estimates it.
        """
        steps = self.max_steps
        if self.max_epochs:
            steps = min(steps, steps_for_epochs(self.max_epochs, self.batches_per_epoch, self.grad_accum))
        if self.budget_steps is not None:
            steps = min(steps, self.budget_steps)
        elif self.max_time and step >= PACE_STEPS and elapsed > 0:
            steps = min(steps, self.steps_in_budget(step, elapsed, elapsed / step))
        return max(steps, 1)

    def stop_reason(self, step: int, epochs_done: int, elapsed: float) -> str | None:
        """Why training stops now (``max_steps``, ``max_epochs`` or ``max_time``), or None to go on.

        ``max_time`` ends training at the steps planned for it, or when the budget is spent before them.
        """
        if step >= self.max_steps:
            return "max_steps"
        if self.max_epochs and epochs_done >= self.max_epochs:
            return "max_epochs"
        planned_done = self.budget_steps is not None and step >= self.budget_steps
        if self.max_time and (elapsed >= self.max_time or planned_done):
            return "max_time"
        return None
