"""Check in seconds what would kill a long run later (``trainer.preflight=true``).

Before the first step: forward and backward on the longest training batch, one evaluation batch
through the metric code (and the monitored metric among its results), a checkpoint written,
read back and removed. Then one block says what the run will cost: the step's peak memory and
time, the estimated wall time, the disk its checkpoints take. A batch that does not fit, metric
code that raises, or a disk that cannot hold the checkpoints stop the run now, with exit 2.

A short plan (:data:`SHORT_PLAN_STEPS`) in one process, without a time budget or compilation,
measures the memory and time on its own first step instead (:class:`FirstStepCheck`), when that
step's batches are as wide as the longest: the separate forward and backward would repeat the
first step's work, a noticeable share of a short run. A narrower first step gets the longest
batch's pass right after it.

Training is left exactly as it was: gradients cleared, buffers (ALBEF's queues) and random
generators restored, so a run with a preflight has the losses of a run without one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Subset

from lmtrain.errors import UserError
from lmtrain.files.atomic import make_dirs
from lmtrain.files.checkpoints import read_weights
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.evaluation import evaluate_objective, to_device
from lmtrain.training.progress import clock
from lmtrain.training.time_estimate import estimated_seconds, longest_indices, timed_eval_batch, typical_batch

if TYPE_CHECKING:
    from lmtrain.training.trainer import Trainer

log = logging.getLogger("lmtrain")
MIB = 1 << 20
SHORT_PLAN_STEPS = 100  # forward + backward passes left to train, at most, for one timed preflight pass


@dataclass
class PreflightReport:
    """What the preflight measured."""

    batch_shape: tuple[int, ...]
    step_seconds: float
    peak_mib: float
    memory_kind: str
    eval_seconds: float
    estimated_seconds: float
    checkpoint_mib: float
    checkpoints_kept: int
    free_mib: float
    on_first_step: bool = False  # step_seconds and peak_mib are the first training step's, all of it
    check_seconds: float = 0.0  # the longest batch's pass after a narrower first step: not training time
    timed_shape: tuple[int, ...] | None = None  # the batch step_seconds times, where not the longest
    evaluation_note: str | None = None  # where evaluating is most of the estimate (Estimate.evaluation_note)

    def describe(self) -> str:
        """The block printed before training (after the first step when that step was the measurement)."""
        shape = " x ".join(str(d) for d in self.batch_shape)
        peak = f"peak memory {self.peak_mib:,.0f} MiB ({self.memory_kind})"
        if self.on_first_step:
            measured = f"first step ({shape}, as wide as the longest batch): {self.step_seconds:.2f} s, {peak}"
        elif self.timed_shape in (None, self.batch_shape):
            measured = f"longest batch ({shape}): forward + backward {self.step_seconds:.2f} s, {peak}"
        else:  # a fine-tuning set's batches differ in width: the typical one gives the time
            typical = " x ".join(str(d) for d in self.timed_shape)
            measured = f"longest batch ({shape}): {peak}; a typical batch ({typical}): forward + backward "
            measured += f"{self.step_seconds:.2f} s"
        return (
            f"preflight: {measured}; evaluation batch {self.eval_seconds:.2f} s\n"
            f"preflight: estimated training time {clock(self.estimated_seconds)}; {self.disk()}"
        ) + (f"\npreflight: {self.evaluation_note}" if self.evaluation_note else "")

    def disk(self) -> str:
        """What the run's checkpoints take, against the free space."""
        return _disk_text(self.checkpoint_mib, self.checkpoints_kept, self.free_mib)


def _disk_text(size: float, kept: int, free: float) -> str:
    return f"checkpoints {size:,.1f} MiB x {kept} = {size * kept:,.1f} MiB, {free:,.0f} MiB free"


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets the process's peak resident set size (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB, "CUDA max allocated"
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "process peak RSS"
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def _longest_batch(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The batch of :func:`lmtrain.training.time_estimate.longest_indices`, collated, on the run's device."""
    return to_device(trainer.collate([trainer.train_set[i] for i in longest_indices(trainer)]), trainer.device)


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate" in text


def _timed_passes(trainer: Trainer) -> int:
    """Forward + backward passes to time: 2 (the first warms the allocator up) where the estimate matters.

    A short plan without a time budget gets one: its estimate only informs, and a second pass would
    cost a noticeable share of the whole run (a 40-step run spends about 2% of its time on it). Most
    short plans time none: :func:`measures_first_step`.
    """
    if trainer.limits.max_time is not None:  # the estimate is checked against the budget
        return 2
    remaining = trainer.limits.planned_steps() - trainer.state.step
    return 1 if remaining * trainer.cfg.grad_accum <= SHORT_PLAN_STEPS else 2


def _train_step_cost(trainer: Trainer, batch: dict[str, torch.Tensor], typical: dict[str, torch.Tensor]) -> float:
    """Seconds of forward + backward on the last of :func:`_timed_passes`: ``batch`` first, then ``typical``."""
    seconds = 0.0
    for number in range(_timed_passes(trainer)):
        current = typical if number else batch
        start = time.perf_counter()
        with trainer.precision.autocast():
            out = trainer.objective(trainer.model, current, trainer.objective.count_targets(current))
        out.loss.backward()
        seconds = time.perf_counter() - start
        trainer.model.zero_grad(set_to_none=True)
    return seconds


# an evaluation batch slower than this is timed again: its first call can pay once-only costs (a metric library
# imported, such as scikit-learn's, about 1.8 s on 2 cores) that the estimate would count at every batch
EVAL_RETIME_S = 0.2


def _eval_cost(trainer: Trainer) -> float:
    """Seconds of one evaluation batch through the objective's metric code; checks the monitored metric.

    A first batch slower than :data:`EVAL_RETIME_S` is run again and the faster time kept.
    """
    if trainer.eval_set is None or len(trainer.eval_set) == 0:
        return 0.0
    seconds = _eval_batch_seconds(trainer)
    if seconds > EVAL_RETIME_S:
        seconds = min(seconds, _eval_batch_seconds(trainer))
    return seconds


def _eval_batch_seconds(trainer: Trainer) -> float:
    """One evaluation batch through the metric code, timed; refuses a run whose evaluation would fail."""
    assert trainer.eval_set is not None, "_eval_cost times only a run that has a held-out set"
    start = time.perf_counter()
    try:
        # Subset indexes any map-style set; the stubs ask for Dataset
        subset: Subset[Any] = Subset(trainer.eval_set, timed_eval_batch(trainer))  # type: ignore[arg-type]
        metrics, _ = evaluate_objective(
            trainer.model,
            trainer.objective,
            subset,
            trainer.collate,
            trainer.cfg.batch_size,
            1,
            trainer.device,
            trainer.precision.autocast,
        )
    except UserError:
        raise
    except Exception as error:  # the evaluation would crash after the whole training: say so now
        raise UserError(
            f"preflight: evaluating a held-out batch failed ({type(error).__name__}: {error}); the run "
            "would fail at its first evaluation. Fix the evaluation data or settings, or turn the "
            "check off with trainer.preflight=false to see the full traceback."
        ) from None
    if trainer.monitor not in metrics:
        raise UserError(
            f"trainer.monitor={trainer.monitor} is not an evaluation metric of this run; "
            f"choose one of {', '.join(metrics)}."
        )
    return time.perf_counter() - start


def _checkpoint_cost(trainer: Trainer) -> tuple[float, int, float]:
    """Write and read back a checkpoint beside the run's; returns (MiB per checkpoint, how many kept, MiB free)."""
    checkpoints = trainer.run.checkpoints
    make_dirs(checkpoints)
    scratch = Path(tempfile.mkdtemp(prefix=".preflight-", dir=checkpoints))
    try:
        state = {"train": {}, "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict()}
        path = ckpt.save_checkpoint(scratch, 0, trainer.model, trainer.model_meta, state, trainer.tokenizer_file)
        problem = ckpt.checkpoint_problem(path)
        if problem:
            raise UserError(
                f"preflight: a checkpoint written to {checkpoints} does not read back ({problem}); "
                "check that filesystem before training on it."
            )
        read_weights(path)
        ckpt.load_trainer_state(path)
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        if not trainer.optimizer.state:  # Adam's moments exist only after the first step: two more weight copies
            size += 2 * sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    kept = (trainer.cfg.keep_last or max(1, trainer.limits.max_steps // max(trainer.cfg.save_every, 1))) + 1  # + best
    return size / MIB, kept, shutil.disk_usage(checkpoints).free / MIB


def _out_of_memory(shape: tuple[int, ...], device: torch.device, error: RuntimeError) -> UserError:
    shown = " x ".join(str(d) for d in shape)
    return UserError(
        f"preflight: the longest training batch ({shown}) does not fit in memory on "
        f"{device} ({' '.join(str(error).split())[:200]}). Lower trainer.batch_size "
        "(and raise trainer.grad_accum to keep the batch), data.max_seq_len, or the model size; "
        "or use trainer.precision=bf16 / model.checkpoint_activations=true."
    )


def batch_shape(batch: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """A batch's (rows, width) (its ``input_ids``' shape), or (rows,) for a batch without token ids."""
    if "input_ids" in batch:
        return tuple(batch["input_ids"].shape)
    return (len(next(iter(batch.values()))),)


@contextlib.contextmanager
def _training_left_as_it_was(trainer: Trainer) -> Iterator[None]:
    """Within the block the model may be run; afterwards its gradients are cleared and its buffers (ALBEF's
    queues), the random generators and train mode are as they were."""
    rng = ckpt.rng_state()
    buffers = {name: b.detach().clone() for name, b in trainer.model.named_buffers()}
    try:
        yield
    finally:
        trainer.model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, buffer in trainer.model.named_buffers():
                buffer.copy_(buffers[name])
        ckpt.set_rng_state(rng)
        trainer.model.train()


def _longest_pass(
    trainer: Trainer, batch: dict[str, torch.Tensor], with_eval: bool, typical: dict[str, torch.Tensor] | None = None
) -> tuple[float, float, str, float]:
    """Forward + backward on ``batch`` (and one evaluation batch when ``with_eval``), leaving training as it was.
    A second pass, where :func:`_timed_passes` makes one, is timed on ``typical`` (default: ``batch`` again).

    Returns (forward + backward seconds, peak MiB, what the peak counts, evaluation batch seconds).
    """
    with _training_left_as_it_was(trainer):
        try:
            _reset_peak_memory(trainer.device)
            trainer.model.train()
            step_seconds = _train_step_cost(trainer, batch, batch if typical is None else typical)
            peak, kind = _peak_memory(trainer.device)
            eval_seconds = _eval_cost(trainer) if with_eval else 0.0
        except RuntimeError as error:
            if not _is_out_of_memory(error):
                raise
            raise _out_of_memory(batch_shape(batch), trainer.device, error) from None
    return step_seconds, peak, kind, eval_seconds


def measures_first_step(trainer: Trainer) -> bool:
    """Whether the run's first step can be the preflight's memory and time measurement.

    A short plan only, whose estimate informs rather than plans (no ``trainer.max_time``), in one
    process (each rank's first batch differs), without compilation (the first step compiles).
    """
    if trainer.limits.max_time is not None or trainer.dist.enabled or trainer.cfg.compile:
        return False
    remaining = trainer.limits.planned_steps() - trainer.state.step
    return remaining * trainer.cfg.grad_accum <= SHORT_PLAN_STEPS


class FirstStepCheck:
    """The preflight's memory and time measurement, taken on the run's first training step.

    Built by :func:`run_preflight` once the other checks passed; the trainer runs its first step
    through :meth:`measure`, which times it, reads its peak memory and, when a micro-batch of it was
    narrower than the longest batch, runs the longest batch's pass right after it.
    """

    def __init__(self, longest: tuple[int, ...], eval_seconds: float, disk: tuple[float, int, float]):
        self.longest, self.eval_seconds, self.disk = longest, eval_seconds, disk

    def describe(self) -> str:
        """The line printed before training: what was checked, and what the first step will measure."""
        return (
            f"preflight: evaluation batch {self.eval_seconds:.2f} s; {_disk_text(*self.disk)}; "
            "memory and time measured on the first step"
        )

    def measure(self, trainer: Trainer, step: Callable[[], None]) -> PreflightReport:
        """Run ``step`` (the trainer's first) measured; a batch that does not fit raises the preflight's UserError."""
        _reset_peak_memory(trainer.device)
        start = time.perf_counter()
        try:
            step()
        except RuntimeError as error:
            if not _is_out_of_memory(error):
                raise
            # the longest batch is at least as large as the one that did not fit
            raise _out_of_memory(self.longest, trainer.device, error) from None
        seconds = time.perf_counter() - start
        peak, kind = _peak_memory(trainer.device)
        shapes = trainer.window_shapes
        as_wide = bool(shapes) and all(shape == self.longest for shape in shapes)
        check_seconds = 0.0
        if as_wide:
            left, first = estimated_seconds(trainer, seconds, self.eval_seconds, whole_step=True), seconds
        else:  # the memory check is the longest batch's: run its pass now
            first, check_start = seconds, time.perf_counter()
            seconds, peak, kind, _ = _longest_pass(trainer, _longest_batch(trainer), with_eval=False)
            left = estimated_seconds(trainer, seconds, self.eval_seconds)
            check_seconds = time.perf_counter() - check_start
        report = PreflightReport(
            self.longest,
            seconds,
            peak,
            kind,
            self.eval_seconds,
            first + left.seconds,
            *self.disk,
            as_wide,
            check_seconds,
        )
        report.evaluation_note = left.evaluation_note()
        return report


def _check_disk(trainer: Trainer) -> tuple[float, int, float]:
    size, kept, free = _checkpoint_cost(trainer) if trainer.dist.is_main else (0.0, 0, float("inf"))
    if size * kept > free:
        raise UserError(
            f"preflight: {trainer.run.checkpoints} has {free:,.0f} MiB free, but this run keeps {kept} "
            f"checkpoints of about {size:,.1f} MiB ({size * kept:,.0f} MiB). Free space, lower "
            "trainer.keep_last, or point hydra.run.dir at a larger disk."
        )
    return size, kept, free


def run_preflight(trainer: Trainer) -> PreflightReport | FirstStepCheck:
    """Run the checks on ``trainer`` before its first step; raises UserError on what would fail later.

    Returns the report, or, where :func:`measures_first_step`, the check the first step completes.
    """
    batch = _longest_batch(trainer)
    if measures_first_step(trainer):
        with _training_left_as_it_was(trainer):
            eval_seconds = _eval_cost(trainer)
        return FirstStepCheck(batch_shape(batch), eval_seconds, _check_disk(trainer))
    typical = typical_batch(trainer) if _timed_passes(trainer) == 2 else longest_indices(trainer)
    same = typical == longest_indices(trainer)
    timed = batch if same else to_device(trainer.collate([trainer.train_set[i] for i in typical]), trainer.device)
    step_seconds, peak, kind, eval_seconds = _longest_pass(trainer, batch, True, timed)
    size, kept, free = _check_disk(trainer)
    left = estimated_seconds(trainer, step_seconds, eval_seconds, timed=typical)
    estimate = left.seconds
    if trainer.limits.max_time and estimate > trainer.limits.max_time and trainer.dist.is_main:
        log.warning(
            "preflight: %d steps would take about %s, longer than trainer.max_time=%s: training stops at the "
            "budget and the learning-rate schedule is planned for the steps that fit. Set "
            "trainer.max_time=null (or longer) to train every step.",
            trainer.limits.planned_steps(),
            clock(estimate),
            trainer.cfg.max_time,
        )
    report = PreflightReport(batch_shape(batch), step_seconds, peak, kind, eval_seconds, estimate, size, kept, free)
    report.timed_shape, report.evaluation_note = batch_shape(timed), left.evaluation_note()
    return report
