"""`lmtrain pretrain`: every part of a pretraining run, built in one place, top to bottom."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Subset

from lmtrain.data.baselines import majority_token_accuracy, unigram_perplexity
from lmtrain.data.collate import PadCollator
from lmtrain.data.datasets import PretrainingDataset
from lmtrain.data.pretraining import masking_spec, prepare_pretraining_data
from lmtrain.errors import UserError
from lmtrain.models.char_cnn import tokenizer_strings
from lmtrain.models.elmo import build_elmo, resolve_elmo_spec
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.loading import model_meta
from lmtrain.models.spec import resolve_spec
from lmtrain.objectives import build_objective
from lmtrain.run_dir import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.distributed import Distributed
from lmtrain.training.loggers import require_loggers
from lmtrain.training.optim import build_optimizer, build_scheduler
from lmtrain.training.precision import resolve_device
from lmtrain.training.session import fit_run
from lmtrain.training.trainer import Trainer

# examples a baseline is estimated on: plenty for unigram statistics, and memory stays flat
BASELINE_SEQUENCES = 50_000

log = logging.getLogger(__name__)


def _build_model(cfg: DictConfig, tokenizer, head_names) -> torch.nn.Module:
    """A fresh model of ``cfg.model.family``: a Transformer, or ELMo's biLM spelling the tokenizer's vocabulary."""
    if cfg.model.family == "elmo":
        if cfg.objective.name != "bilm":
            raise UserError(f"model.family=elmo trains with objective=bilm, not {cfg.objective.name}.")
        spec = resolve_elmo_spec(cfg.model, tokenizer.vocab_size, tokenizer.id("pad"))
        return build_elmo(spec, tokenizer_strings(tokenizer))
    if cfg.model.family != "transformer":
        raise UserError(f"model.family={cfg.model.family} is not supported; choose transformer, elmo or albef.")
    if cfg.objective.name == "bilm":
        raise UserError("objective=bilm needs ELMo's biLM: use model=elmo.")
    spec = resolve_spec(cfg.model, tokenizer.vocab_size, tokenizer.id("pad"))
    if cfg.data.max_seq_len > spec.max_positions:
        raise UserError(f"data.max_seq_len={cfg.data.max_seq_len} is longer than model.max_positions="
                        f"{spec.max_positions}; lower the first or raise the second.")
    return LanguageModel(spec, head_names)


def _sample(dataset) -> list[int]:
    """Evenly spread indices of at most ``BASELINE_SEQUENCES`` examples (all of a smaller set)."""
    if len(dataset) <= BASELINE_SEQUENCES:
        return list(range(len(dataset)))
    return np.linspace(0, len(dataset) - 1, BASELINE_SEQUENCES).astype(int).tolist()


def _baselines(objective: str, train_set, eval_set, vocab_size: int) -> dict[str, float]:
    """Unigram perplexity or majority-token accuracy, estimated on a sample so memory stays flat."""
    if objective in ("clm", "bilm"):
        ids = lambda ds: [ds.store[i]["input_ids"] for i in _sample(ds)]  # noqa: E731
        return {"baseline/unigram_ppl": unigram_perplexity(ids(train_set), ids(eval_set), vocab_size)}
    return {"baseline/mlm_majority_acc": majority_token_accuracy(Subset(train_set, _sample(train_set)),
                                                                 Subset(eval_set, _sample(eval_set)))}


def _next_commands(run: Path, cfg: DictConfig) -> list[str]:
    """What a user does next with a pretrained run of ``cfg``'s model and objective."""
    commands = [f"lmtrain evaluate ckpt={run}"]
    if cfg.objective.name == "clm":
        commands.append(f"lmtrain generate ckpt={run} prompt='The fire'")
    elif cfg.objective.name in ("mlm", "mlm_nsp"):
        commands.append(f"lmtrain generate ckpt={run} prompt='The [MASK] spread across the hills.'")
    commands.append(f"lmtrain finetune task=ner init={run}")
    if cfg.model.family == "transformer":
        commands.append(f"lmtrain export ckpt={run} out={run}/hf")
    return commands


def run(cfg: DictConfig) -> dict[str, Any]:
    """Pretrain ``cfg.model`` with ``cfg.objective`` on ``cfg.data``; returns the run summary."""
    if cfg.model.family == "albef":  # images and text: its own data and objective, the same Trainer
        from lmtrain.commands.albef_pretrain import run as run_albef

        return run_albef(cfg)
    started = time.perf_counter()
    require_loggers(cfg.trainer.loggers)  # a missing package fails now, not after data preparation
    device = resolve_device(cfg.trainer.device)
    dist = Distributed.from_env(cfg.trainer.strategy, device.type)
    device = dist.device(device)
    run_dir = RunDir(dist.broadcast(str(hydra_run_dir())))  # every rank uses rank 0's run directory
    if not dist.is_main:
        dist.barrier()  # rank 0 tokenizes and caches first; the others then read its cache
    data = prepare_pretraining_data(cfg.data, cfg.tokenizer, cfg.objective)
    if dist.is_main:
        dist.barrier()
    tokenizer = data.tokenizer
    if dist.is_main:
        tokenizer.save(run_dir.path / TOKENIZER_FILE)

    objective = build_objective(cfg.objective.name)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights on every rank
    model = _build_model(cfg, tokenizer, objective.head_names).to(device)

    dynamic = masking_spec(cfg.objective, tokenizer) if cfg.objective.name == "mlm" and cfg.objective.masking == "dynamic" else None
    train_set = PretrainingDataset(data.train, dynamic, seed=cfg.trainer.seed)
    eval_set = PretrainingDataset(data.eval, dynamic, seed=cfg.trainer.seed + 1)
    optimizer = build_optimizer(model, cfg.optim, device)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    meta = model_meta(model, cfg.model.name, cfg.objective.name, tokenizer)
    trainer = Trainer(model, objective, optimizer, scheduler, train_set, eval_set, PadCollator(tokenizer.id("pad")),
                      cfg.trainer, run_dir, device, meta, data.tokenizer_path, dist=dist)
    log.info("%s: %.2fM parameters, %d train / %d held-out sequences, device %s", cfg.model.name,
             model.num_parameters() / 1e6, len(train_set), len(eval_set), device)
    summary = fit_run(trainer, cfg, run_dir,
                      ckpt.resume_checkpoint(cfg.trainer.resume, run_dir.checkpoints))
    summary = {
        "command": "pretrain",
        "model": cfg.model.name,
        "objective": cfg.objective.name,
        **summary,
        **_baselines(cfg.objective.name, train_set, eval_set, tokenizer.vocab_size),
        "parameters": model.num_parameters(),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    dist.close()
    if not dist.is_main:
        return summary
    run_dir.finish(summary, f"lmtrain pretrain model={cfg.model.name} — {run_dir.path}",
                   _next_commands(run_dir.path, cfg))
    return summary
