"""Where training stands, saved in every checkpoint, and what the loop reads off it: whether an
evaluation beats the best so far, and the summary ``fit`` returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtrain.files.checkpoints import BEST


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    tokens_seen: int = 0
    train_seconds: float = 0.0
    best_value: float | None = None  # best value of the monitored eval metric so far
    best_step: int | None = None
    evals_without_improvement: int = 0
    elapsed_seconds: float = 0.0  # wall time of training, evaluations and saves (for trainer.max_time)
    planned_steps: int | None = None  # the steps the schedule is planned over (max_steps / max_epochs / max_time)
    budget_steps: int | None = None  # the steps planned once for trainer.max_time ...
    budget_seconds: float | None = None  # ... of this many seconds (a resume with another budget plans anew)
    evaluated_epochs: int = 0  # last epoch count evaluated by trainer.eval_every_epochs


def record_evaluation(state: TrainState, value: float, higher_is_better: bool) -> bool:
    """Update the best value (and the evaluations without improvement) with the monitored metric's
    ``value`` at ``state.step``; True if it improved."""
    best = state.best_value
    if not math.isfinite(value):
        improved = False
    elif best is None:
        improved = True
    else:
        improved = value > best if higher_is_better else value < best
    if improved:
        state.best_value, state.best_step = value, state.step
        state.evals_without_improvement = 0
    else:
        state.evals_without_improvement += 1
    return improved


def fit_summary(
    state: TrainState,
    batches_per_epoch: int,
    stopped_by: str | None,
    evaluations: dict[str, float],
    checkpoint: Path,
    monitor: str,
    checkpoints: Path,
) -> dict[str, Any]:
    """What ``fit`` returns: steps, epochs, why it stopped, the ``evaluations`` (``start/*`` and ``eval/*``),
    throughput, the last ``checkpoint`` and, when the run evaluated, the best value of ``monitor`` and
    the best checkpoint in the ``checkpoints`` folder."""
    summary = {
        "steps": state.step,
        "epochs": round(state.epoch + state.batch_in_epoch / max(batches_per_epoch, 1), 3),
        "stopped_by": stopped_by,
        **evaluations,
        "train_seconds": round(state.train_seconds, 2),
        "train_tokens": state.tokens_seen,
        "tokens_per_s": state.tokens_seen / max(state.train_seconds, 1e-9),
        "checkpoint": str(checkpoint),
    }
    if state.best_value is not None:
        summary[f"best/{monitor}"] = state.best_value
        summary["best_step"] = state.best_step
        summary["best_checkpoint"] = str((checkpoints / BEST).resolve())
    return summary
