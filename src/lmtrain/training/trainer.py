"""The one training loop, shared by every model and objective.

    batch.to(device) -> autocast -> out = objective(model, batch, norm) -> backward -> clip -> step

It knows nothing about batch keys or model families: objectives count targets and compute
losses, datasets produce examples, the command builds every part and hands them over.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmtrain.config.durations import parse_duration
from lmtrain.config.training import TrainerConfig
from lmtrain.errors import UserError
from lmtrain.objectives.base import Objective
from lmtrain.run_folder.layout import RunDir, lower_is_better
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.checkpoint_format import CheckpointFormat
from lmtrain.training.distributed import Distributed
from lmtrain.training.evaluation import EvaluationSet, evaluate_objective
from lmtrain.training.limits import Limits
from lmtrain.training.optimizer_update import OptimizerUpdate
from lmtrain.training.precision import Precision
from lmtrain.training.preflight import FirstStepCheck, batch_shape
from lmtrain.training.progress import TrainingProgress
from lmtrain.training.sharding import root_gathered
from lmtrain.training.step_plan import StepPlan
from lmtrain.training.stop_signals import StopRequests, TrainingInterrupted
from lmtrain.training.train_batches import TrainingSet, training_batches
from lmtrain.training.train_state import TrainState, fit_summary, record_evaluation
from lmtrain.training.train_step import ObjectiveStep, accumulate_gradients, wrapped_step  # noqa: F401 (ObjectiveStep: importable here too)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def setup_objects_frozen() -> Iterator[None]:
    """Leave the objects alive now out of garbage collection until the block ends.

    A run builds a few hundred thousand Python objects before training (configs, tokenizer, modules), and a
    full collection during the steps walks all of them (~110 ms in a BERT-mini CLI run) to find nothing:
    training makes almost no new cycles. Objects frozen by someone else before stay frozen.
    """
    already = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()  # collectable again, for whatever the process does next


class Trainer:
    """Runs optimizer steps, evaluations and checkpoints.

    Args:
        model: the module to train (already on ``device``).
        objective: turns (model, batch) into loss and metric sums.
        optimizer, scheduler: built by the command for ``model``.
        train_set, eval_set: datasets of examples; ``collate`` pads a list of them into a batch.
        cfg: the `trainer` config group.
        run: the run directory.
        device: where the model lives.
        model_meta: saved as ``model.json`` in checkpoints (how to rebuild the model).
        tokenizer_file: copied into checkpoints.
        dist: this process's place in a data-parallel job (None = a single process).

    ``loggers`` holds extra metric sinks (``trainer.loggers``) that get every event ``metrics.jsonl``
    gets; :func:`lmtrain.training.session.fit_run` opens them after a restore. Closed when ``fit`` ends.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        train_set: TrainingSet,
        eval_set: EvaluationSet | None,
        collate: Callable,
        cfg: TrainerConfig,
        run: RunDir,
        device: torch.device,
        model_meta: dict[str, Any],
        tokenizer_file: Path | None = None,
        dist: Distributed | None = None,
    ):
        self.model, self.objective = model, objective
        self.dist = dist or Distributed()
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_set, self.eval_set, self.collate = train_set, eval_set, collate
        self.cfg, self.run, self.device = cfg, run, device
        self.tokenizer_file = tokenizer_file
        self.loggers: list[Any] = []
        self.precision = Precision(cfg.precision, device, cfg.tf32)
        self.state = TrainState()
        # the metric that ranks this run, in every checkpoint: `lmtrain runs` reads it from there
        self.model_meta = {**model_meta, "main_metric": self.monitor, "higher_is_better": self._higher_is_better()}
        self.batches = training_batches(train_set, collate, cfg, self.dist, device)
        self.sampler = self.batches.sampler
        self.parallel_step, self.step_module = wrapped_step(model, objective, optimizer, cfg, self.dist, device)
        # the per-step savings of OptimizerUpdate's lean path pay on CPU; DDP, FSDP and compile keep the plain one
        lean = device.type == "cpu" and not (self.dist.enabled or self.dist.sharded or cfg.compile)
        self.update = OptimizerUpdate(model, optimizer, cfg.grad_clip, self.precision.scaler, lean=lean)
        self.checkpoint_format = CheckpointFormat(cfg.checkpoint_format, model, optimizer, self.dist)
        if cfg.max_steps is None:  # start_run refuses it, or finetune fills in the task's default before this
            raise ValueError("the Trainer needs trainer.max_steps settled")
        self.limits = Limits(
            cfg.max_steps, cfg.max_epochs, parse_duration(cfg.max_time), len(self.sampler), cfg.grad_accum
        )
        self.step_plan = StepPlan(self.limits, scheduler, self.dist, cfg.max_time)
        self._fit_started = time.perf_counter()
        self.start_eval: dict[str, float] = {}
        self.stopped_by: str | None = None
        self.stops = StopRequests()
        self.last_eval: dict[str, float] = {}
        self.last_predictions: tuple[int, list] | None = None  # (step, the objective's predictions) of last_eval
        self.window_shapes: list[tuple[int, ...]] = []  # the last step's micro-batch shapes
        self.first_step_check: FirstStepCheck | None = None  # the preflight's measurement, taken on the first step

    # ---------------------------------------------------------------- steps
    def _train_step(self, sums: dict[str, torch.Tensor]) -> None:
        """One optimizer step over ``grad_accum`` micro-batches, normalised by the window's targets."""
        window = [self.batches.next_batch(self.state) for _ in range(self.cfg.grad_accum)]
        self.window_shapes = [batch_shape(batch) for batch in window]
        self.update.before_backward()
        accumulate_gradients(
            window, self.objective, self.parallel_step, self.step_module, self.dist, self.precision, sums
        )
        self.update.apply()  # unscale, clip, step, zero the gradients
        self.objective.after_optimizer_step(self.model)
        self.scheduler.step()
        self.state.step += 1

    def gathered(self) -> contextlib.AbstractContextManager:
        """A context in which the model's parts can be called directly (FSDP: the root unit's weights gathered)."""
        return root_gathered(self.parallel_step, self.dist.sharded)

    def evaluate(self) -> dict[str, float]:
        """Metrics of the held-out set as ``eval/<name>`` (empty without one)."""
        if self.eval_set is None:
            return {}
        predictions: list = []
        with self.gathered():
            metrics, _ = evaluate_objective(
                self.model,
                self.objective,
                self.eval_set,
                self.collate,
                self.cfg.batch_size,
                self.cfg.eval_batches,
                self.device,
                self.precision.autocast,
                predictions_out=predictions,
                dist=self.dist,
            )
        self.last_eval = {f"eval/{k}": v for k, v in metrics.items()}
        self.last_predictions = (self.state.step, predictions)
        return self.last_eval

    # ---------------------------------------------------------------- checkpoints
    def save(self) -> Path:
        """Checkpoint the current step (atomic), then prune old ones."""
        self.state.elapsed_seconds, self._fit_started = self._elapsed(), time.perf_counter()
        rng_per_rank = self.dist.gather(ckpt.rng_state())  # every rank's dropout stream, for exact resume
        state = {
            "train": asdict(self.state),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_per_rank[0],
            "rng_per_rank": rng_per_rank,
        }
        if self.precision.scaler is not None:
            state["scaler"] = self.precision.scaler.state_dict()
        path = self.checkpoint_format.save(
            self.run.checkpoints, self.state.step, self.model_meta, state, self.tokenizer_file
        )
        if self.dist.is_main:
            ckpt.prune_checkpoints(self.run.checkpoints, self.cfg.keep_last)
        self.dist.barrier()
        return path

    def _save_and_mark(self, best: bool) -> Path:
        """Checkpoint the current step, marked as the best one when ``best``."""
        path = self.save()
        if best and self.dist.is_main:
            ckpt.mark_best(self.run.checkpoints, path)
        return path

    @property
    def monitor(self) -> str:
        """The eval metric (without ``eval/``) that picks the best checkpoint and early-stops."""
        return self.cfg.monitor or self.objective.main_metric

    def _higher_is_better(self) -> bool:
        if self.monitor == self.objective.main_metric:
            return self.objective.higher_is_better
        return not lower_is_better(self.monitor)  # the rule `lmtrain runs` ranks by

    def _track_best(self, metrics: dict[str, float]) -> bool:
        """Update the best value with this evaluation; True if it improved."""
        key = f"eval/{self.monitor}"
        if key not in metrics:
            raise UserError(
                f"trainer.monitor={self.monitor} is not an evaluation metric of this run; "
                f"choose one of {', '.join(k[5:] for k in metrics)}."
            )
        return record_evaluation(self.state, metrics[key], self._higher_is_better())

    def load_weights(self, checkpoint: Path) -> None:
        """The model weights of ``checkpoint``, on every rank (under FSDP each rank keeps its shard)."""
        self.checkpoint_format.load(checkpoint)

    def restore(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``: weights, optimizer, scheduler, RNG and data position."""
        state = ckpt.load_trainer_state(checkpoint)
        self.checkpoint_format.load(checkpoint, state)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.precision.scaler is not None and "scaler" in state:
            self.precision.scaler.load_state_dict(state["scaler"])
        per_rank = state.get("rng_per_rank") or []
        ckpt.set_rng_state(per_rank[self.dist.rank] if len(per_rank) == self.dist.world_size else state["rng"])
        self.state = TrainState(**state["train"])
        self.batches.restart()
        if self.dist.is_main:
            self.run.truncate_metrics(self.state.step)
        log.info("resumed from %s at step %d", checkpoint, self.state.step)

    # ---------------------------------------------------------------- loop
    def _log_train(self, sums: dict[str, torch.Tensor], seconds: float, progress: TrainingProgress) -> None:
        values = {k: float(v) for k, v in self.dist.sum(sums).items()}  # the only host sync, once per log window
        self.state.tokens_seen += int(values["tokens"])
        metrics = {f"train/{k}": v for k, v in self.objective.summarize(values).items()}
        if not math.isfinite(metrics["train/loss"]):
            raise UserError(
                f"the training loss became {metrics['train/loss']} at step {self.state.step}; "
                "lower optim.lr, keep trainer.grad_clip on, or use trainer.precision=fp32."
            )
        metrics["train/lr"] = self.scheduler.get_last_lr()[0]
        metrics["train/tokens_per_s"] = values["tokens"] / max(seconds, 1e-9)
        metrics["train/tokens_seen"] = self.state.tokens_seen
        if self.dist.is_main:
            self._log(metrics)
            progress.show(self.state.step, metrics, self.state.epoch + self.state.batch_in_epoch / len(self.sampler))

    def _log(self, metrics: dict[str, Any]) -> None:
        self.run.log(self.state.step, metrics)
        for logger in self.loggers:
            logger.log(self.state.step, metrics)

    def _evaluate_and_log(self, progress: TrainingProgress) -> bool:
        """Evaluate, log, and remember the best step; True if this evaluation is the best so far."""
        metrics = self.evaluate()
        if not metrics:
            return False
        if self.dist.is_main:
            self._log(metrics)
            progress.note(f"step {self.state.step}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return self._track_best(metrics)

    def _stop_everywhere(self) -> bool:
        """Whether any rank got Ctrl-C (all ranks must stop at the same step)."""
        return self.dist.any(self.stops.requested)

    def _count_unlogged_tokens(self, sums: dict[str, torch.Tensor]) -> None:
        if sums:
            self.state.tokens_seen += int(self.dist.sum({"tokens": sums["tokens"]})["tokens"])

    def _should_stop_early(self) -> bool:
        patience = self.cfg.early_stopping_patience
        return bool(patience) and self.state.evals_without_improvement >= patience

    def _epochs_done(self) -> int:
        """Complete passes over the training data so far."""
        return self.state.epoch + (1 if self.state.batch_in_epoch >= len(self.sampler) else 0)

    def _elapsed(self) -> float:
        """Wall seconds of training so far (evaluations and saves included; every resumed part added up)."""
        return self.state.elapsed_seconds + time.perf_counter() - self._fit_started

    def _stop_reason(self) -> str | None:
        """Why training ends now; ranks agree on a time budget, since their clocks differ."""
        reason = self.limits.stop_reason(self.state.step, self._epochs_done(), self._elapsed())
        if self.limits.max_time and self.dist.enabled and reason in (None, "max_time"):  # the same branch on every rank
            reason = "max_time" if self.dist.any(reason == "max_time") else None
        return reason

    def _epoch_eval_due(self) -> bool:
        every = getattr(self.cfg, "eval_every_epochs", 0)
        done = self._epochs_done()
        if every and done > self.state.evaluated_epochs and done % every == 0:
            self.state.evaluated_epochs = done
            return True
        return False

    def _evaluate_at_start(self, progress: TrainingProgress) -> None:
        """Held-out metrics of the starting weights at step 0 (``trainer.eval_at_start``)."""
        metrics = self.evaluate()
        self.start_eval = {f"start/{k[len('eval/') :]}": v for k, v in metrics.items()}
        if metrics and self.dist.is_main:
            self._log(metrics)
            progress.note("step 0: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        self.model.train()

    def fit(self) -> dict[str, Any]:
        """Train until ``max_steps``, ``max_epochs`` or ``max_time``; returns the summary."""
        self.model.train()
        self.stops.install()
        self._fit_started = time.perf_counter()
        try:
            with (
                setup_objects_frozen(),
                TrainingProgress(
                    self.limits.planned_steps(),
                    self.state.step,
                    self.cfg.progress and self.dist.is_main,
                    self.limits.max_epochs,
                ) as progress,
            ):
                self.step_plan.start(self.state, progress)
                if getattr(self.cfg, "eval_at_start", False) and self.state.step == 0:
                    self._evaluate_at_start(progress)
                self.stopped_by, sums = self._run_steps(progress)
                if self.stopped_by in ("max_time", "max_epochs") and self.dist.is_main:
                    progress.note(f"stopping at step {self.state.step}: trainer.{self.stopped_by} reached")
                self._count_unlogged_tokens(sums)
                last = self._save_and_mark(self._evaluate_and_log(progress))
        finally:
            self.stops.restore()
            self.update.close()  # the model's embeddings as they were, for whatever uses the model next
            for logger in self.loggers:
                logger.finish()
        return fit_summary(
            self.state,
            len(self.sampler),
            self.stopped_by,
            {**self.start_eval, **self.last_eval},
            last,
            self.monitor,
            self.run.checkpoints,
        )

    def _run_steps(self, progress: TrainingProgress) -> tuple[str, dict[str, torch.Tensor]]:
        """Optimizer steps, with logging, evaluations and checkpoints at their cadence, until a limit or
        early stopping ends training; returns why, and the train sums not logged yet."""
        cfg = self.cfg
        sums: dict[str, torch.Tensor] = {}
        window_start = time.perf_counter()
        stop = self._stop_reason()
        while stop is None:
            step_start, checking = time.perf_counter(), 0.0
            if self.first_step_check is not None:
                check, self.first_step_check = self.first_step_check, None
                report = check.measure(self, functools.partial(self._train_step, sums))
                checking = report.check_seconds  # a pass that only checked memory is not training time
                window_start += checking
                if self.dist.is_main:
                    for line in report.describe().splitlines():
                        progress.note(line)
            else:
                self._train_step(sums)
            self.state.train_seconds += time.perf_counter() - step_start - checking
            progress.advance(self.state.step)
            if self.limits.max_time:
                self.step_plan.after_step(self.state, self._elapsed(), progress)
            stop = self._stop_reason()
            final = stop is not None
            if self.state.step % cfg.log_every == 0 or final:
                self._log_train(sums, time.perf_counter() - window_start, progress)
                sums, window_start = {}, time.perf_counter()
            evaluated = best = False
            step_eval = cfg.eval_every and self.state.step % cfg.eval_every == 0
            if (step_eval or self._epoch_eval_due()) and not final:
                evaluated, best = True, self._evaluate_and_log(progress)
            if best or (cfg.save_every and self.state.step % cfg.save_every == 0 and not final):
                self._save_and_mark(best)
            if self._stop_everywhere():
                self._count_unlogged_tokens(sums)
                raise TrainingInterrupted(self.save(), self.state.step, self.stops.signum)
            if evaluated and self._should_stop_early():
                progress.note(
                    f"early stopping: no better eval/{self.monitor} in {cfg.early_stopping_patience} evaluations"
                )
                return "early_stopping", sums
        return stop, sums
