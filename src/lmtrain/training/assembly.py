"""The run assembly every training command shares: device, distribution, run directory, optimizer,
scheduler, Trainer, resume, fit and summary.

    context = start_run(cfg)          # device, this process's rank (torchrun), rank 0's run directory
    parts = RunParts(model, ...)      # the command builds its parts, using context.dist / context.device
    summary = fit(context, parts, cfg)

So `pretrain` and `finetune` (every model family and task) run under `torchrun` alike: rank 0
writes the run directory, every rank trains, and summary.json records the world size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from lmtrain.config.commands import FinetuneConfig, PretrainConfig
from lmtrain.config.durations import parse_duration
from lmtrain.config.training import TrainerConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.files.checkpoints import TOKENIZER, read_model_meta
from lmtrain.models.packing import apply_packing
from lmtrain.objectives.base import Objective
from lmtrain.run_folder.layout import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.runs.plot import save_run_curves
from lmtrain.runs.task_plots import save_task_plots
from lmtrain.shell_words import command
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.data_agreement import check_same_data, tokenizer_digest
from lmtrain.training.deferred_init import ShardLayout, build_deferred, is_deferred
from lmtrain.training.distributed import Distributed
from lmtrain.training.evaluation import EvaluationSet
from lmtrain.training.loggers import require_loggers, send_summary
from lmtrain.training.optim import build_optimizer, build_scheduler
from lmtrain.training.precision import resolve_device
from lmtrain.training.progress import print_next_commands, print_summary
from lmtrain.training.session import fit_run
from lmtrain.training.sharding import shard_layout
from lmtrain.training.step_plan import PlanSource
from lmtrain.training.train_batches import TrainingSet
from lmtrain.training.trainer import Trainer

log = logging.getLogger(__name__)

_Model = TypeVar("_Model", bound=nn.Module)  # a model's own class, kept through building and placing


@dataclass
class RunContext:
    """Where a training run happens, known before any part is built.

    Attributes:
        device: this process's device.
        dist: this process's place in the job (world size 1 without torchrun).
        run_dir: rank 0's run directory, the same on every rank.
        resume_from: the checkpoint ``trainer.resume`` names, or None.
        started: when the command started (for the summary's wall time).
        shard_layout: this rank's place along FSDP's shard dimension (``trainer.fsdp_replicas``).
    """

    device: torch.device
    dist: Distributed
    run_dir: RunDir
    resume_from: Path | None
    started: float
    shard_layout: ShardLayout = ShardLayout()

    @property
    def tokenizer_path(self) -> Path:
        """The run's ``tokenizer.json``."""
        return self.run_dir.path / TOKENIZER_FILE

    def steps_per_epoch(self, n_examples: int, trainer_cfg: TrainerConfig) -> int:
        """Optimizer steps in one pass over ``n_examples`` (the global batch: every rank's, accumulated)."""
        global_batch = trainer_cfg.batch_size * self.dist.world_size * trainer_cfg.grad_accum
        return max(1, n_examples // global_batch)

    def build_model(self, build: Callable[[], _Model]) -> _Model:
        """``build()`` (seeded by the caller); under FSDP on the meta device, each rank keeping only its shards of
        the initial weights, which are the weights a normal build draws (:mod:`lmtrain.training.deferred_init`).
        Pass the result through :meth:`place`."""
        return build_deferred(build, self.shard_layout) if self.dist.sharded else build()

    def place(self, model: _Model) -> _Model:
        """``model`` on this rank's device; a model built on the meta device stays there until it is sharded."""
        return model if is_deferred(model) else model.to(self.device)

    @contextlib.contextmanager
    def main_rank_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the others: rank 0 prepares (tokenizes, caches) and the
        others find its results, instead of every rank doing the work at once into the same files."""
        if not self.dist.is_main:
            self.dist.barrier()
        yield
        if self.dist.is_main:
            self.dist.barrier()

    @contextlib.contextmanager
    def node_main_first(self) -> Iterator[None]:
        """Run the block on the first process of every node (``LOCAL_RANK`` 0) first, then on the others:
        each node prepares its own data cache once, and its other processes then read it."""
        if not self.dist.is_node_main:
            self.dist.barrier()
        yield
        if self.dist.is_node_main:
            self.dist.barrier()

    def share_tokenizer(self, resolve: Callable[[], tuple[TextTokenizer, str]]) -> tuple[TextTokenizer, str]:
        """``resolve()`` on rank 0 alone: (tokenizer, its ``tokenizer.json`` text); the other ranks get the text
        through the process group, not a file, so nodes without a shared filesystem hold the same tokenizer
        (training a tokenizer twice can number equally frequent tokens differently)."""
        tokenizer, text = resolve() if self.dist.is_main else (None, None)
        text, roles = self.dist.broadcast((text, tokenizer.roles) if tokenizer is not None else None)
        if tokenizer is None:
            tokenizer = TextTokenizer.from_str(text, roles, source="rank 0's tokenizer")
        return tokenizer, text

    def run_tokenizer(self, train: Callable[[], TextTokenizer]) -> TextTokenizer:
        """The tokenizer a run trains for itself: a resumed run's own, else ``train()`` on rank 0 alone,
        saved as the run's ``tokenizer.json`` and sent to the other ranks (see :meth:`share_tokenizer`)."""
        if self.resume_from is not None:
            roles = read_model_meta(self.resume_from)["tokenizer_roles"]
            own = self.resume_from / TOKENIZER
            return TextTokenizer.from_file(
                own if own.exists() else self.resume_from.parent.parent / TOKENIZER_FILE, roles
            )

        def trained() -> tuple[TextTokenizer, str]:
            tokenizer = train()
            tokenizer.save(self.tokenizer_path)
            return tokenizer, tokenizer.to_str()

        return self.share_tokenizer(trained)[0]


def start_run(cfg: PretrainConfig | FinetuneConfig) -> RunContext:
    """The first step of every training command: check the loggers, pick the device, join the process
    group `torchrun` describes (``trainer.strategy``), agree on rank 0's run directory and find the
    checkpoint to resume from.

    Args:
        cfg: the command's whole config (``trainer.*`` is read here).
    """
    started = time.perf_counter()
    if cfg.trainer.max_steps is None and not getattr(getattr(cfg, "task", None), "max_steps_by_backbone", None):
        raise UserError(
            "trainer.max_steps=null leaves the number of steps to a fine-tuning task preset's default "
            "for the backbone (task.max_steps_by_backbone), and this command has none; give "
            "trainer.max_steps=N."
        )
    require_loggers(cfg.trainer.loggers)  # a missing package fails now, not after data preparation
    device = resolve_device(cfg.trainer.device)
    dist = Distributed.from_env(
        cfg.trainer.strategy,
        device.type,
        parse_duration(cfg.trainer.dist_timeout, "trainer.dist_timeout"),
        parse_duration(cfg.trainer.host_timeout, "trainer.host_timeout"),
    )
    run_dir = RunDir(dist.broadcast(str(hydra_run_dir())))  # every rank uses rank 0's run directory
    resume_from = _same_on_every_rank(dist, ckpt.resume_checkpoint(cfg.trainer.resume, run_dir.checkpoints))
    layout = shard_layout(dist, cfg.trainer.fsdp_replicas) if dist.sharded else ShardLayout()
    return RunContext(dist.device(device), dist, run_dir, resume_from, started, layout)


def _same_on_every_rank(dist: Distributed, resume_from: Path | None) -> Path | None:
    """``resume_from``, once every rank found the same checkpoint (a node without rank 0's run directory
    would otherwise start from scratch beside ranks that resume)."""
    if not dist.enabled:
        return resume_from
    found = dist.gather(str(resume_from) if resume_from is not None else None)
    odd = [rank for rank, path in enumerate(found) if path != found[0]]
    if odd:
        raise UserError(
            f"trainer.resume: rank 0 continues from {found[0] or 'scratch (no checkpoint yet)'}, but "
            f"rank{'s' if len(odd) > 1 else ''} {', '.join(map(str, odd))} found "
            f"{found[odd[0]] or 'no checkpoint'}. Every node must read rank 0's checkpoint at the same "
            "path: put the run directory on a filesystem every node shares, or copy the checkpoint "
            "to that path on every node."
        )
    return resume_from


@dataclass
class RunParts:
    """What a training command builds; :func:`fit` does the rest.

    Attributes:
        model: the model to train, already on the context's device, built alike on every rank.
        objective: turns (model, batch) into loss and metrics.
        train_set, eval_set: datasets of examples; ``collate`` pads a list of them into a batch.
        tokenizer: the run's tokenizer (rank 0 saves it as ``tokenizer.json``).
        meta: ``model.json`` of the checkpoints (how to rebuild the model).
        summary: the summary's first entries (command, model, objective or task ...).
        title: the heading of the printed summary.
        next_commands: what a user runs next, printed after the summary.
        description: one log line about the model and data.
        head_lr: learning rate of the task head's parameters (None = ``optim.lr``).
        report: summary entries computed after training (baselines, held-out reports), run on every rank.
        data_digests: what -> digest of the data every rank must hold alike (example stores), besides the
            tokenizer; checked across ranks before training.
        steps_note: where ``trainer.max_steps`` came from, for the plan's first line ("" = the key itself).
    """

    model: nn.Module
    objective: Objective
    train_set: TrainingSet
    eval_set: EvaluationSet | None
    collate: Callable
    tokenizer: TextTokenizer
    meta: dict[str, Any]
    summary: dict[str, Any]
    title: str
    next_commands: list[str] = field(default_factory=list)
    description: str = ""
    head_lr: float | None = None
    report: Callable[[Trainer], dict[str, Any]] | None = None
    data_digests: dict[str, str] = field(default_factory=dict)
    steps_note: str = ""


def fit(context: RunContext, parts: RunParts, cfg: PretrainConfig | FinetuneConfig) -> dict[str, Any]:
    """Train ``parts`` in ``context`` to the end; returns the run summary (written by rank 0).

    Sets the backbones' ``trainer.packing``, builds the optimizer (``optim.*``, ``parts.head_lr``), the
    schedule and the Trainer, resumes,
    fits (:func:`lmtrain.training.session.fit_run`: loggers, preflight, Ctrl-C), then writes
    ``summary.json`` with the world size and finishes the run directory. Under ``torchrun`` it first
    refuses to train unless every rank holds rank 0's tokenizer and ``parts.data_digests``.
    """
    dist, device, run_dir = context.dist, context.device, context.run_dir
    if dist.enabled:  # every rank must train on rank 0's token ids
        check_same_data(dist, {"tokenizer": tokenizer_digest(parts.tokenizer), **parts.data_digests})
    if dist.is_main:
        parts.tokenizer.save(context.tokenizer_path)
    apply_packing(parts.model, cfg.trainer.packing)
    optimizer = build_optimizer(parts.model, cfg.optim, device, head_lr=parts.head_lr)
    # start_run refuses max_steps=null unless a task preset has a default, which finetune sets before this
    assert cfg.trainer.max_steps is not None, "trainer.max_steps is settled before training"
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    trainer = Trainer(
        parts.model,
        parts.objective,
        optimizer,
        scheduler,
        parts.train_set,
        parts.eval_set,
        parts.collate,
        cfg.trainer,
        run_dir,
        device,
        parts.meta,
        context.tokenizer_path,
        dist=dist,
    )
    if parts.description:
        log.info(
            "%s, device %s%s",
            parts.description,
            device,
            f", {dist.world_size} processes ({dist.strategy})" if dist.enabled else "",
        )
    plan = PlanSource(getattr(cfg.data, "max_seq_len", None), parts.steps_note or "trainer.max_steps")
    summary = fit_run(trainer, cfg, run_dir, context.resume_from, plan)
    summary = {
        **parts.summary,
        **summary,
        **(parts.report(trainer) if parts.report else {}),
        "world_size": dist.world_size,
        "wall_seconds": round(time.perf_counter() - context.started, 2),
        "config": dataclasses.asdict(cfg),
    }
    dist.close()
    if dist.is_main:
        finish_run(run_dir, summary, parts.title, list(cfg.trainer.loggers), parts.next_commands)
    return summary


def finish_run(
    run_dir: RunDir, summary: dict[str, Any], title: str, loggers: list[str], next_commands: Sequence[str] = ()
) -> None:
    """End a training run: ``summary.json``, ``curves.png`` (and the task's pictures), the summary to the
    trackers ``loggers`` names (``trainer.loggers``), the summary table on the console and the commands
    that apply next."""
    run_dir.write_summary(summary)
    save_run_curves(run_dir.path)
    save_task_plots(run_dir.path)  # a fine-tuned run's confusion matrix and F1 per class, where it has them
    send_summary(loggers, run_dir.path, summary)
    print_summary(title, summary)
    more = 2 * max(summary.get("steps", 0), 1)  # "train longer": resume continues the schedule to the new total
    print_next_commands(
        [
            *next_commands,
            command("resume", shlex.quote(str(run_dir.path)), f"trainer.max_steps={more}"),
            command("runs"),
        ]
    )
