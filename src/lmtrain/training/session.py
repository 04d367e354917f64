"""The part every training command shares once its Trainer is built: CPU kernels, resume, loggers, fit, Ctrl-C."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from lmtrain.config.commands import FinetuneConfig, PretrainConfig
from lmtrain.errors import UserError
from lmtrain.files.cache_home import cache_home
from lmtrain.files.checkpoints import read_model_meta
from lmtrain.kernels import keep_freed_cpu_memory, select_cpu_kernels
from lmtrain.kernels.memo import MEMO_FILE
from lmtrain.run_folder.layout import RunDir
from lmtrain.training.checkpoint import newest_intact_checkpoint
from lmtrain.training.distributed import lost_peer, peer_gone
from lmtrain.training.loggers import open_loggers
from lmtrain.training.preflight import FirstStepCheck, run_preflight
from lmtrain.training.step_plan import PlanSource, describe_plan
from lmtrain.training.stop_signals import TrainingInterrupted, continue_hint
from lmtrain.training.trainer import Trainer

log = logging.getLogger(__name__)


def _put_kernels_in_force(trainer: Trainer, choice: str, resume_from: Path | None) -> tuple[str, str]:
    """Select the CPU kernels once for the run, and record them in its checkpoints.

    ``auto`` measures, which can decide differently from one process to the next; the kernels
    draw dropout masks differently, so a resumed run takes the kernels its checkpoint recorded and
    every rank takes rank 0's choice (exact resume, and one kind of mask per job).
    """
    recorded = read_model_meta(resume_from).get("cpu_kernels") if choice == "auto" and resume_from else None
    try:
        kernels, why = select_cpu_kernels(
            recorded or choice, trainer.device, memo=cache_home() / MEMO_FILE, measure=trainer.dist.is_main
        )  # rank 0 measures, the others follow it
        why = f"as the resumed run started ({why})" if recorded else why
    except UserError:  # recorded oneDNN kernels that this machine cannot run
        log.warning(
            "the resumed run started with %s CPU kernels, which cannot run here; the losses will not "
            "repeat the uninterrupted run's exactly",
            recorded,
        )
        kernels, why = select_cpu_kernels(
            choice, trainer.device, memo=cache_home() / MEMO_FILE, measure=trainer.dist.is_main
        )
    if trainer.dist.enabled and choice == "auto":
        agreed = trainer.dist.broadcast(kernels)
        if agreed != kernels:
            kernels, why = select_cpu_kernels(agreed, trainer.device)
    trainer.model_meta["cpu_kernels"] = kernels
    return kernels, why


def fit_run(
    trainer: Trainer,
    cfg: PretrainConfig | FinetuneConfig,
    run: RunDir,
    resume_from: Path | None,
    plan: PlanSource | None = None,
) -> dict[str, Any]:
    """Train to the end and return the Trainer's summary, with the CPU kernels it ran on (``cpu_kernels``).

    First puts ``cfg.trainer.cpu_kernels`` in force (``auto`` measures, once per process). Resumes from
    ``resume_from`` (if any), then opens ``cfg.trainer.loggers`` on rank 0, so a resumed run's curves
    continue from its step, and gives every rank its own dropout stream (seeded before the resume restores
    the streams each rank saved, so a resumed run draws what the uninterrupted one would).
    On Ctrl-C, SIGTERM or SIGUSR1 it finishes the step, saves, prints the command that continues the
    run and exits with 128 + the signal number (130 for Ctrl-C).

    Args:
        trainer: the built trainer (its ``dist`` says which rank this is).
        cfg: the command's whole config (logged by the trackers).
        run: the run directory.
        resume_from: the checkpoint to continue from, or None.
        plan: what the plan's first lines say beside the trainer's own limits (sequence length, where
            ``max_steps`` came from).
    """
    dist = trainer.dist
    kernels, why = _put_kernels_in_force(trainer, cfg.trainer.cpu_kernels, resume_from)
    if dist.is_main:
        log.info("CPU kernels: %s (%s)", kernels, why)
    if trainer.device.type == "cpu" and kernels != "torch":  # `torch`: PyTorch as it is, the C allocator's too
        heap = keep_freed_cpu_memory()
        if dist.is_main:
            log.info("CPU memory: %s", heap)
    if dist.enabled:  # independent dropout per rank; a resumed run then restores each rank's saved stream
        torch.manual_seed(cfg.trainer.seed + dist.rank)
    if resume_from is not None:
        trainer.restore(resume_from)
    _describe_and_check(trainer, run, plan, cfg.trainer.preflight)
    if dist.is_main:  # after the preflight, so its checks leave no trace in the trackers
        trainer.loggers = open_loggers(
            cfg.trainer.loggers, run.path, dataclasses.asdict(cfg), start_step=trainer.state.step
        )
    try:
        return {**trainer.fit(), "cpu_kernels": kernels}
    except TrainingInterrupted as stop:
        dist.close()
        if dist.is_main:
            print(continue_hint(run.path, stop), file=sys.stderr)
        sys.exit(stop.exit_code)
    except RuntimeError as error:
        if not dist.enabled or not peer_gone(error):
            raise
        raise _lost_peer_error(error, dist.rank, run) from None


def _describe_and_check(trainer: Trainer, run: RunDir, plan: PlanSource | None, preflight: bool) -> None:
    """Log the run directory and the plan (rank 0), then run the preflight checks when ``preflight`` asks
    (not under FSDP) and log their report."""
    dist = trainer.dist
    if dist.is_main:
        log.info("run directory %s (stop it with Ctrl-C and continue it with `lmtrain resume %s`)", run.path, run.path)
        for line in describe_plan(trainer, plan or PlanSource()):
            log.info(line)
    if preflight and not dist.sharded:
        report = run_preflight(trainer)
        if isinstance(report, FirstStepCheck):  # a short plan: its first step is the memory and time check
            trainer.first_step_check = report
        if dist.is_main:
            for line in report.describe().splitlines():
                log.info(line)


def _lost_peer_error(error: RuntimeError, rank: int, run: RunDir) -> UserError:
    """The error a rank stops with when another rank of the job died (naming the newest intact checkpoint)."""
    # torchrun sends SIGTERM to the survivors as soon as a worker dies: let this one say why it stops first
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    checkpoints = run.path / "checkpoints"
    try:
        newest = newest_intact_checkpoint(checkpoints)
    except UserError:  # every checkpoint damaged: the report says none is kept rather than failing itself
        newest = None
    return lost_peer(error, rank, checkpoints, newest)
