"""`lmtrain finetune`: every part of a fine-tuning run, built in one place, top to bottom.

    task data -> backbone (pretrain run | checkpoint | HF folder | scratch) + its tokenizer
    -> encoded datasets -> model with a task head (partly frozen) -> objective -> the shared Trainer
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lmtrain.data.collate import PadCollator
from lmtrain.models.loading import model_meta
from lmtrain.run_dir import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.tasks import build_task
from lmtrain.tasks.backbone import resolve_backbone
from lmtrain.tasks.model import build_finetune_model, describe, freeze, head_learning_rate, tagger_options
from lmtrain.tasks.report import evaluation_report
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.optim import build_optimizer, build_scheduler
from lmtrain.training.precision import resolve_device
from lmtrain.training.loggers import require_loggers
from lmtrain.training.session import fit_run
from lmtrain.training.trainer import Trainer

log = logging.getLogger(__name__)


def _samples(task, model, tokenizer, cfg: DictConfig, run: RunDir) -> dict[str, Any]:
    """Generation: greedy completions of held-out prompts by the best checkpoint."""
    if task.name != "generation" or cfg.task.samples <= 0:
        return {}
    best = run.checkpoints / ckpt.BEST
    if ckpt.is_checkpoint(best):
        ckpt.load_weights(model, best.resolve())
    samples = task.samples(model, tokenizer, cfg.task.samples, cfg.task.max_new_tokens)
    for sample in samples:
        log.info("prompt %r -> %r (reference %r)", sample["prompt"], sample["generated"], sample["reference"])
    exact = sum(s["generated"].strip() == s["reference"].strip() for s in samples) / max(len(samples), 1)
    return {"samples/exact_match": exact, "samples": samples}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune a backbone on ``cfg.task`` with ``cfg.data``; returns the run summary."""
    if cfg.task.name == "retrieval":  # images and captions: ALBEF, its own data and model building
        from lmtrain.commands.albef_finetune import run as run_retrieval

        return run_retrieval(cfg)
    started = time.perf_counter()
    require_loggers(cfg.trainer.loggers)  # a missing package fails now, not after the data is read
    run_dir = RunDir(hydra_run_dir())
    task = build_task(cfg.task.name, cfg.data)
    task.read()
    backbone = resolve_backbone(cfg, task.causal, task.texts() if cfg.init == "scratch" else [])
    tokenizer = backbone.tokenizer
    tokenizer.save(run_dir.path / TOKENIZER_FILE)
    limit = backbone.spec.max_positions  # None for ELMo's LSTMs: no limit
    if limit is not None and cfg.data.max_seq_len > limit:
        log.warning("data.max_seq_len=%d is longer than the backbone's %d positions; using %d",
                    cfg.data.max_seq_len, limit, limit)
        cfg.data.max_seq_len = limit
    train_set, eval_set = task.datasets(tokenizer, cfg.data.max_seq_len)
    device = resolve_device(cfg.trainer.device)
    torch.manual_seed(cfg.trainer.seed)
    tagger = tagger_options(task, backbone, cfg.finetune.task_encoder, cfg.task.crf, cfg.finetune.task_lstm_dim,
                            cfg.finetune.class_weights)
    model = build_finetune_model(task, backbone, cfg.finetune.head_dropout, tagger).to(device)
    freeze(model, cfg.finetune.freeze_backbone, cfg.finetune.freeze_layers)  # None: ELMo frozen, Transformers tuned
    objective = task.objective(cfg.finetune.class_weights)
    head_lr = head_learning_rate(backbone, cfg.finetune.head_lr, cfg.finetune.freeze_backbone)
    optimizer = build_optimizer(model, cfg.optim, device, head_lr=head_lr)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    meta = {**model_meta(model, backbone.model_name, f"finetune:{task.name}", tokenizer), "task": task.meta()}
    trainer = Trainer(model, objective, optimizer, scheduler, train_set, eval_set, PadCollator(tokenizer.id("pad")),
                      cfg.trainer, run_dir, device, meta, run_dir.path / TOKENIZER_FILE)
    log.info("finetune task=%s from %s: %d train / %d held-out examples, device %s", task.name, backbone.source,
             len(train_set), len(eval_set), device)
    summary = fit_run(trainer, cfg, run_dir,
                      ckpt.resume_checkpoint(cfg.trainer.resume, run_dir.checkpoints))
    baselines = task.baselines(tokenizer)
    summary = {"command": "finetune", "task": task.name, "init": backbone.source, "model": backbone.model_name,
               **summary, **baselines, **describe(model), "labels": task.labels,
               **evaluation_report(trainer),  # the final model's, so before _samples loads the best one
               **_samples(task, model, tokenizer, cfg, run_dir),
               "wall_seconds": round(time.perf_counter() - started, 2),
               "config": OmegaConf.to_container(cfg, resolve=True)}
    run_dir.finish(summary, f"lmtrain finetune task={task.name} — {run_dir.path}",
                   [f"lmtrain predict ckpt={run_dir.path} input=<text file, one input per line>"])
    return summary
