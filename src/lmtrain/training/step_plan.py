"""How many steps a run trains, over which horizon its learning rate decays, and the lines that say so.

The plan is ``trainer.max_steps``, or fewer when ``trainer.max_epochs`` ends sooner, and the first
log lines state it (:func:`describe_plan`). Under ``trainer.max_time`` the pace of the first steps
then decides, once, how many steps fit the budget; the schedule decays over them and one line says
why the total changed. It never moves again: a total re-estimated at every log line (``step 5/1215``,
``step 10/1543``) hides what the run will do. Evaluations and saves still to come are not in that
pace: where they spend the budget first, training stops there.

A resumed run whose total changed (``lmtrain resume <run> trainer.max_steps=<more>``) continues its
schedule to the new horizon: from the step it resumes at, the learning rate follows the decay
planned over the new total, and one line says so. A run resumed with the same limits keeps its
schedule exactly, and an ``optim.decay_steps`` the user gave holds as given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lmtrain.training.distributed import Distributed
from lmtrain.training.limits import PACE_STEPS, Limits
from lmtrain.training.progress import TrainingProgress, clock

if TYPE_CHECKING:
    from lmtrain.training.train_state import TrainState
    from lmtrain.training.trainer import Trainer

log = logging.getLogger("lmtrain")


@dataclass
class PlanSource:
    """What the plan's first line needs that the Trainer does not know.

    Attributes:
        max_seq_len: tokens per sequence at most (``data.max_seq_len``; None = not shown).
        steps_note: where ``trainer.max_steps`` came from (a task preset's default for the backbone ...).
    """

    max_seq_len: int | None = None
    steps_note: str = "trainer.max_steps"


def _cadence(every: int, what: str) -> str:
    return f"{what} every {every:,} steps and at the end" if every else f"{what} at the end"


def describe_plan(trainer: Trainer, source: PlanSource) -> list[str]:
    """The plan's lines, logged before the preflight: steps x batch x sequence length, tokens, evaluation
    and checkpoint cadence, and the time budget when there is one."""
    cfg, limits, step = trainer.cfg, trainer.limits, trainer.state.step
    steps = limits.planned_steps()
    batch = cfg.batch_size * cfg.grad_accum * trainer.dist.world_size
    span = f"{steps:,} steps" if step == 0 else f"steps {step + 1:,}-{steps:,}"
    why = (
        source.steps_note
        if steps == cfg.max_steps
        else f"trainer.max_epochs={limits.max_epochs} ends before trainer.max_steps={cfg.max_steps:,}"
    )
    shape = f"{span} ({why}) x {batch:,} sequences"
    if source.max_seq_len:
        shape += f" x {source.max_seq_len:,} tokens (up to {(steps - step) * batch * source.max_seq_len:,} tokens)"
    lines = [f"plan: {shape}; {_cadence(cfg.eval_every, 'evaluation')}, {_cadence(cfg.save_every, 'a checkpoint')}"]
    if limits.max_time:
        lines.append(
            f"plan: time budget trainer.max_time={cfg.max_time} (training, evaluations and saves count): "
            f"the pace of the first {PACE_STEPS + 1} steps decides, once, how many of these steps fit, and "
            "the learning rate decays over those"
        )
    return lines


class StepPlan:
    """The run's planned total: the learning-rate horizon and the progress total, moved at most once by a budget.

    Args:
        limits: the run's stopping rules (:attr:`Limits.budget_steps` is set here).
        scheduler: the learning-rate scheduler (its ``set_horizon`` follows the plan when it has one).
        dist: this process's place in the job (rank 0 plans the budget for every rank).
        budget: ``trainer.max_time`` as the user wrote it (for the log line).
    """

    def __init__(self, limits: Limits, scheduler: Any, dist: Distributed, budget: str | None = None):
        self.limits, self.scheduler, self.dist, self.budget = limits, scheduler, dist, budget
        self.start_step = 0
        self.paced_from: float | None = None  # elapsed seconds when this process's first step ended
        self.budget_pending = False

    def start(self, state: TrainState, progress: TrainingProgress) -> None:
        """Plan the run as ``fit`` starts (after a restore) and say what a resumed run's new limits change."""
        self.start_step, self.paced_from = state.step, None
        kept = state.budget_steps is not None and state.budget_seconds == self.limits.max_time
        self.limits.budget_steps = state.budget_steps if kept else None  # a resumed budget plan stands
        self.budget_pending = bool(self.limits.max_time) and not kept
        previous, planned = state.planned_steps, self.limits.planned_steps()
        self._follow(state, planned, progress)
        if state.step and previous is not None and planned != previous and self.dist.is_main:
            log.info(
                self._resumed(state.step, previous, planned)
                if not self.budget_pending
                else f"resumed at step {state.step:,} under trainer.max_time={self.budget}, not the budget its "
                f"{previous:,} planned steps were fitted to: the steps that fit are planned anew after "
                f"{PACE_STEPS + 1} steps (until then the learning rate follows {planned:,} steps)"
            )

    def after_step(self, state: TrainState, elapsed: float, progress: TrainingProgress) -> None:
        """Under a time budget: once :data:`PACE_STEPS` steps after the first have run, plan the steps that fit."""
        done, budget = state.step - self.start_step, self.limits.max_time
        if not self.budget_pending or budget is None or done < 1:  # pending only under a budget
            return
        if done == 1:
            self.paced_from = elapsed  # the first step warms up (allocations, kernel choice): not a pace
            return
        if done < PACE_STEPS + 1 or self.paced_from is None:  # paced_from is set at done == 1
            return
        pace = (elapsed - self.paced_from) / PACE_STEPS
        fit = self.limits.steps_in_budget(state.step, elapsed, pace)
        if self.dist.enabled:  # every rank plans the same schedule: rank 0's clock decides
            fit = int(self.dist.broadcast(fit))
        self.budget_pending = False
        self.limits.budget_steps, state.budget_steps, state.budget_seconds = fit, fit, self.limits.max_time
        before, planned = state.planned_steps, self.limits.planned_steps()
        assert before is not None, "start() planned the steps"
        self._follow(state, planned, progress)
        if self.dist.is_main:
            log.info(self._budgeted(state.step, elapsed, pace, fit, before, planned, budget))

    def _follow(self, state: TrainState, planned: int, progress: TrainingProgress) -> None:
        set_horizon = getattr(self.scheduler, "set_horizon", None)
        if set_horizon is not None:
            set_horizon(planned)
        state.planned_steps = planned
        if progress.total != planned:
            progress.set_total(planned)

    def _budgeted(
        self, step: int, elapsed: float, pace: float, fit: int, before: int, planned: int, max_time: float
    ) -> str:
        budget = self.budget or clock(max_time)
        head = (
            f"trainer.max_time={budget}: at {pace:.3g} s a step (steps {step - PACE_STEPS + 1}-{step}), "
            f"{fit - step:,} more steps fit in the {clock(max(max_time - elapsed, 0))} left"
        )
        if planned < before:
            return (
                f"{head}: the run now ends at step {planned:,} instead of {before:,}, and the learning rate "
                "decays to its floor there (the plan changes only this once)"
            )
        return f"{head}: all {planned:,} planned steps fit, and the plan stays"

    def _resumed(self, step: int, previous: int, planned: int) -> str:
        head = f"resumed at step {step:,} with {planned:,} planned steps instead of {previous:,}"
        plan = getattr(self.scheduler, "plan", None)
        if plan is None or planned <= step:
            return head
        floor = plan.min_ratio * self.scheduler.base_lrs[0]
        if plan.fixed:
            after = (
                f", so steps after {plan.horizon:,} run at the final learning rate {floor:.3g}"
                if planned > plan.horizon
                else ""
            )
            return f"{head}: optim.decay_steps={plan.horizon:,} keeps the learning-rate horizon as given{after}"
        return (
            f"{head}: the learning-rate schedule continues to the new horizon, re-planned from step {step:,} "
            f"({self.scheduler.get_last_lr()[0]:.3g} now, {plan.schedule} to {floor:.3g} at step {planned:,})"
        )
