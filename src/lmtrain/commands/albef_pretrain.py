"""`lmtrain pretrain model=albef`: image-text pretraining (ITC + ITM + MLM), built top to bottom.

    image-caption pairs (generated shapes | captions files) -> caption tokenizer -> datasets with
    crops, flips and MLM masks -> ALBEF model -> ImageTextObjective -> the shared Trainer
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lmtrain.data.image_caption_sets import caption_tokenizer, load_image_caption_data
from lmtrain.data.image_text import ImageTextCollator, ImageTextDataset
from lmtrain.data.pretraining import masking_spec
from lmtrain.data.tokenizer import TextTokenizer, special_roles
from lmtrain.errors import UserError
from lmtrain.models.albef import AlbefModel, resolve_albef_spec
from lmtrain.models.loading import checkpoint_tokenizer, model_meta
from lmtrain.objectives.image_text import ImageTextObjective, check_batch_setup
from lmtrain.objectives.retrieval import RECALL_AT
from lmtrain.run_dir import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.distributed import Distributed
from lmtrain.training.loggers import require_loggers
from lmtrain.training.optim import build_optimizer, build_scheduler
from lmtrain.training.precision import resolve_device
from lmtrain.training.session import fit_run
from lmtrain.training.trainer import Trainer

log = logging.getLogger(__name__)


def chance_recall(n_images: int) -> dict[str, float]:
    """Recall@k of a random ranking of ``n_images`` images (one right answer per query)."""
    return {f"baseline/chance_r{k}": min(1.0, k / max(n_images, 1)) for k in RECALL_AT}


def build_objective(obj_cfg: Any, steps_per_epoch: int, with_mlm: bool = True) -> ImageTextObjective:
    """ALBEF's weighted losses from the `objective` group; alpha ramps up over the first epoch."""
    return ImageTextObjective(itc_weight=obj_cfg.itc_weight, itm_weight=obj_cfg.itm_weight,
                              mlm_weight=obj_cfg.mlm_weight if with_mlm else 0.0, alpha=obj_cfg.alpha,
                              alpha_warmup_steps=steps_per_epoch, hard_negatives=obj_cfg.hard_negatives,
                              rerank_k=obj_cfg.rerank_k, queue_start=obj_cfg.queue_start)


def _tokenizer(cfg: DictConfig, data, resume_from: Path | None, path: Path, dist: Distributed) -> TextTokenizer:
    """The caption tokenizer, written to ``path``: a resumed run's own, else trained by rank 0 and read by the
    others (training a tokenizer twice can number tokens of equal frequency differently)."""
    if resume_from is not None:
        tokenizer = checkpoint_tokenizer(resume_from)
    elif dist.is_main:
        tokenizer = caption_tokenizer(data, cfg.tokenizer, cfg.data.max_words, cfg.data.cache_dir)
    if dist.is_main:
        tokenizer.save(path)
    dist.barrier()
    if not dist.is_main and resume_from is None:
        tokenizer = TextTokenizer.from_file(path, special_roles(cfg.tokenizer))
    return tokenizer


def run(cfg: DictConfig) -> dict[str, Any]:
    """Pretrain ALBEF on ``cfg.data``; returns the run summary."""
    started = time.perf_counter()
    if cfg.objective.name != "albef":
        raise UserError(f"model.family=albef trains with objective=albef, not {cfg.objective.name}.")
    require_loggers(cfg.trainer.loggers)
    device = resolve_device(cfg.trainer.device)
    dist = Distributed.from_env(cfg.trainer.strategy, device.type)
    device = dist.device(device)
    check_batch_setup(cfg.model.queue_size, cfg.trainer.batch_size, dist.world_size, cfg.objective.itm_weight)
    run_dir = RunDir(dist.broadcast(str(hydra_run_dir())))
    data_cfg = cfg.data
    data = load_image_caption_data(data_cfg.source, list(data_cfg.train_files), list(data_cfg.eval_files),
                                   data_cfg.image_root, data_cfg.eval_fraction, data_cfg.split_seed,
                                   cfg.model.image_size, data_cfg.skip_bad_images, data_cfg.shapes_train,
                                   data_cfg.shapes_eval, allow_outside_root=data_cfg.allow_outside_root)
    resume_from = ckpt.resume_checkpoint(cfg.trainer.resume, run_dir.checkpoints)
    tokenizer_path = run_dir.path / TOKENIZER_FILE
    tokenizer = _tokenizer(cfg, data, resume_from, tokenizer_path, dist)
    masking = masking_spec(cfg.objective, tokenizer) if cfg.objective.mlm_weight > 0 else None
    common = dict(tokenizer=tokenizer, image_size=cfg.model.image_size, max_seq_len=data_cfg.max_seq_len,
                  max_words=data_cfg.max_words, masking=masking, crop_min_scale=data_cfg.crop_min_scale,
                  flip=data_cfg.flip)
    train_set = ImageTextDataset(data.train, data.images, train=True, seed=cfg.trainer.seed, **common)
    eval_set = ImageTextDataset(data.eval, data.images, train=False, seed=cfg.trainer.seed + 1, **common)

    spec = resolve_albef_spec(cfg.model, tokenizer.vocab_size, tokenizer.id("pad"))
    if data_cfg.max_seq_len > spec.text.max_positions:
        raise UserError(f"data.max_seq_len={data_cfg.max_seq_len} is longer than model.max_positions="
                        f"{spec.text.max_positions}; lower the first or raise the second.")
    steps_per_epoch = max(1, len(train_set) // (cfg.trainer.batch_size * dist.world_size * cfg.trainer.grad_accum))
    objective = build_objective(cfg.objective, steps_per_epoch)
    torch.manual_seed(cfg.trainer.seed)
    model = AlbefModel(spec, objective.head_names).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    meta = model_meta(model, cfg.model.name, cfg.objective.name, tokenizer)
    trainer = Trainer(model, objective, optimizer, scheduler, train_set, eval_set, ImageTextCollator(tokenizer.id("pad")),
                      cfg.trainer, run_dir, device, meta, tokenizer_path, dist=dist)
    log.info("albef: %.2fM trainable parameters, %d train / %d held-out pairs (%s), device %s",
             model.num_parameters() / 1e6, len(train_set), len(eval_set), data.source, device)
    summary = fit_run(trainer, cfg, run_dir, resume_from)
    summary = {"command": "pretrain", "model": cfg.model.name, "objective": cfg.objective.name, **summary,
               **chance_recall(len({p.image_id for p in data.eval})), "data": data.source,
               "train_pairs": len(train_set), "eval_pairs": len(eval_set), "parameters": model.num_parameters(),
               "wall_seconds": round(time.perf_counter() - started, 2),
               "config": OmegaConf.to_container(cfg, resolve=True)}
    dist.close()
    if not dist.is_main:
        return summary
    run_dir.finish(summary, f"lmtrain pretrain model={cfg.model.name} — {run_dir.path}",
                   [f"lmtrain finetune task=retrieval init={run_dir.path}",
                    f"lmtrain predict ckpt={run_dir.path} input=<captions file> images=<folder of images>"])
    return summary
