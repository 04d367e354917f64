"""The preflight's estimate of a run's time, scaled by what the run's batches compute.

A fine-tuning set's batches differ in width. The preflight runs the longest training batch (the one that
must fit in memory), then, for a longer plan, times the batch of the epoch nearest the mean width
(:func:`typical_batch`), and one held-out batch nearest the evaluation's mean width (:func:`timed_eval_batch`).
The estimate scales each timing by what the run's batches compute against the timed one: every row padded to
its batch's longest, or the real tokens alone where ``trainer.packing`` skips a training batch's padding
(:func:`lmtrain.models.packing.skips_padding`). Timed on the longest training batch and the first held-out one
(the shortest: the tasks sort their held-out sets by length), a MiniLM NER run bucketed by length was
estimated at four times its training time and under half its evaluation's.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from lmtrain.models.packing import packing_mode, skips_padding
from lmtrain.training.evaluation import held_out_batches
from lmtrain.training.progress import clock

if TYPE_CHECKING:
    from lmtrain.training.trainer import Trainer

NOTE_EVALUATION_SECONDS = 30.0  # evaluations of a run that take less are not worth a line, whatever their share
MAX_BATCHES = 4096  # batches read for a mean; a longer epoch is read at evenly spaced batches


def computed_tokens(lengths: np.ndarray, packing: str) -> int:
    """Token slots a batch of examples of ``lengths`` tokens computes under the packing mode ``packing``."""
    real, slots = int(lengths.sum()), len(lengths) * int(lengths.max(initial=0))
    return real if skips_padding(real, slots, packing) else slots


def spaced(batches: Sequence[Sequence[int]]) -> Sequence[Sequence[int]]:
    """``batches``, or :data:`MAX_BATCHES` evenly spaced ones of a longer list (enough for a mean)."""
    if len(batches) <= MAX_BATCHES:
        return batches
    return [batches[i] for i in np.linspace(0, len(batches) - 1, MAX_BATCHES).round().astype(int)]


def tokens_per_batch(lengths: np.ndarray, batches: Sequence[Sequence[int]], packing: str) -> np.ndarray:
    """:func:`computed_tokens` of each of ``batches`` (index lists into ``lengths``)."""
    return np.array([computed_tokens(lengths[list(batch)], packing) for batch in batches], dtype=np.float64)


def step_share(lengths: np.ndarray, batches: Sequence[Sequence[int]], timed: Sequence[int], packing: str) -> float:
    """What the mean of ``batches`` computes against the ``timed`` batch."""
    top = computed_tokens(lengths[list(timed)], packing)
    return float(tokens_per_batch(lengths, spaced(batches), packing).mean()) / top if batches and top else 1.0


def nearest_mean(tokens: np.ndarray) -> int:
    """The index of the first of ``tokens`` nearest their mean: the batch to time. A step's time is close to
    affine in its tokens (a fixed part, the optimizer's and each operation's overhead, then the products), so
    the batch of mean width takes the mean time; scaling a narrower or wider one by tokens alone would
    charge the fixed part too little or too much."""
    return int(np.argmin(np.abs(tokens - tokens.mean())))


def evaluation_share(lengths: np.ndarray | None, batches: Sequence[Sequence[int]], timed: Sequence[int]) -> float:
    """What all of ``batches`` compute against the ``timed`` one (their number where ``lengths`` is None)."""
    if lengths is None:
        return float(len(batches))
    top = computed_tokens(lengths[list(timed)], "off")
    return float(tokens_per_batch(lengths, batches, "off").sum()) / top if top else float(len(batches))


def example_lengths(dataset: Sized) -> np.ndarray | None:
    """The tokens of each of ``dataset``'s examples (its ``lengths``), or None where it has none, or not one
    per example (a plug's set of uneven examples is then estimated as if they were all as wide)."""
    lengths = getattr(dataset, "lengths", None)
    if lengths is None:
        return None
    lengths = np.asarray(lengths)
    return lengths if lengths.ndim == 1 and len(lengths) == len(dataset) else None


def longest_indices(trainer: Trainer) -> list[int]:
    """The ``batch_size`` longest training examples (by ``lengths`` when the dataset has them)."""
    lengths = example_lengths(trainer.train_set)
    size = min(trainer.cfg.batch_size, len(trainer.train_set))
    if lengths is not None:
        return np.argsort(-lengths, kind="stable")[:size].tolist()
    return list(range(size))  # packed sequences: every example has the same length


def timed_eval_batch(trainer: Trainer) -> list[int]:
    """The held-out batch the preflight runs: of the evaluation's batches, the one nearest their mean width (the
    first where the set has no ``lengths``)."""
    assert trainer.eval_set is not None, "only a run with a held-out set evaluates"
    batches = held_out_batches(len(trainer.eval_set), trainer.cfg.batch_size, trainer.cfg.eval_batches)
    lengths = example_lengths(trainer.eval_set)
    if lengths is None:
        return batches[0]
    return batches[nearest_mean(tokens_per_batch(lengths, batches, "off"))]


def _training_packing(trainer: Trainer) -> str:
    """The packing mode the run's training steps run under: a compiled step never skips padding."""
    return "off" if trainer.cfg.compile else packing_mode(trainer.model)


def typical_batch(trainer: Trainer) -> list[int]:
    """The training batch of this epoch nearest the mean width (:func:`nearest_mean`): the one the preflight
    times for the estimate (the longest where the set has no ``lengths``: then every batch is as wide)."""
    lengths = example_lengths(trainer.train_set)
    batches = [] if lengths is None else trainer.sampler.batches(trainer.state.epoch)
    if lengths is None or not batches:
        return longest_indices(trainer)
    candidates = spaced(batches)
    tokens = tokens_per_batch(lengths, candidates, _training_packing(trainer))
    return list(candidates[nearest_mean(tokens)])


def _training_share(trainer: Trainer, timed: Sequence[int]) -> float:
    """What the run's mean training batch computes against the ``timed`` one (1 where the set has no ``lengths``)."""
    lengths = example_lengths(trainer.train_set)
    if lengths is None:
        return 1.0
    batches = trainer.sampler.batches(trainer.state.epoch)
    return step_share(lengths, batches, timed, _training_packing(trainer))


def evaluations_left(step: int, end: int, every: int) -> int:
    """The evaluations of a run at ``step`` that trains to ``end``: one every ``every`` steps (0: none) before
    the last step, then the final one (the trainer's cadence)."""
    periodic = max((end - 1) // every - step // every, 0) if every else 0
    return periodic + 1


class Estimate(NamedTuple):
    """The time left to train (seconds), and the evaluations it counts: how many, and the seconds of each."""

    seconds: float
    evaluations: int
    evaluation_seconds: float

    def evaluation_note(self) -> str | None:
        """A line for the preflight where evaluating takes most of the time, saying how to trim it; else None."""
        total = self.evaluations * self.evaluation_seconds
        if total <= self.seconds / 2 or total < NOTE_EVALUATION_SECONDS:
            return None
        less_often = "raise trainer.eval_every to evaluate less often, or " if self.evaluations > 1 else ""
        return (
            f"evaluation is most of that time ({self.evaluations} x about {_seconds(self.evaluation_seconds)}): "
            f"{less_often}set trainer.eval_batches to evaluate on fewer held-out batches"
        )


def _seconds(seconds: float) -> str:
    """``0.25 s``, ``12 s`` under a minute, else the clock (``0:03:05``)."""
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s" if seconds < 60 else clock(seconds)


def _evaluation_plan(trainer: Trainer, eval_seconds: float) -> tuple[int, float]:
    """The evaluations left to ``trainer``'s run and the seconds of each, from ``eval_seconds`` per
    :func:`timed_eval_batch` scaled to the held-out batches (0 seconds without a held-out set)."""
    cfg = trainer.cfg
    count = evaluations_left(trainer.state.step, trainer.limits.planned_steps(), cfg.eval_every)
    if trainer.eval_set is None or len(trainer.eval_set) == 0:
        return count, 0.0
    batches = held_out_batches(len(trainer.eval_set), cfg.batch_size, cfg.eval_batches)
    share = evaluation_share(example_lengths(trainer.eval_set), batches, timed_eval_batch(trainer))
    return count, eval_seconds * share


def estimated_seconds(
    trainer: Trainer,
    step_seconds: float,
    eval_seconds: float,
    whole_step: bool = False,
    timed: Sequence[int] | None = None,
) -> Estimate:
    """Time left to train: ``step_seconds`` per forward + backward of the ``timed`` training batch (default:
    the longest; per optimizer step when ``whole_step``), ``eval_seconds`` per :func:`timed_eval_batch`, each
    scaled to what the run's batches compute (see the module docstring)."""
    cfg = trainer.cfg
    steps = max(trainer.limits.planned_steps() - trainer.state.step, 0)
    per_step = step_seconds if whole_step else cfg.grad_accum * step_seconds * 1.15  # 1.15: optimizer step
    evaluations, per_evaluation = _evaluation_plan(trainer, eval_seconds)
    share = _training_share(trainer, longest_indices(trainer) if timed is None else timed)
    return Estimate(steps * per_step * share + evaluations * per_evaluation, evaluations, per_evaluation)
