"""When training stops: ``max_steps``, ``max_epochs`` or ``max_time``, whichever comes first.

The learning-rate schedule is planned over the steps training will really take: ``max_steps``,
or fewer when ``max_epochs`` ends sooner, or, under a time budget, the steps the measured pace
fits into what is left of it (as cramming plans its schedule for a fixed budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# measured steps before the pace is trusted to plan a time budget
PACE_STEPS = 5


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
    """

    max_steps: int
    max_epochs: int | None
    max_time: float | None
    batches_per_epoch: int
    grad_accum: int

    def planned_steps(self, step: int = 0, elapsed: float = 0.0) -> int:
        """The steps training will take, as far as known at ``step`` after ``elapsed`` seconds."""
        steps = self.max_steps
        if self.max_epochs:
            steps = min(steps, steps_for_epochs(self.max_epochs, self.batches_per_epoch, self.grad_accum))
        if self.max_time and step >= PACE_STEPS and elapsed > 0:
            pace = elapsed / step  # seconds per step, evaluations and saves so far included
            steps = min(steps, max(step, step + int((self.max_time - elapsed) / pace)))
        return max(steps, 1)

    def stop_reason(self, step: int, epochs_done: int, elapsed: float) -> str | None:
        """Why training stops now (``max_steps``, ``max_epochs`` or ``max_time``), or None to go on."""
        if step >= self.max_steps:
            return "max_steps"
        if self.max_epochs and epochs_done >= self.max_epochs:
            return "max_epochs"
        if self.max_time and elapsed >= self.max_time:
            return "max_time"
        return None
