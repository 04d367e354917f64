"""`lmtrain finetune task=retrieval`: fine-tune ALBEF for image-text retrieval, built top to bottom.

    image-caption pairs (several captions per image) -> ALBEF (pretrained ALBEF | BERT text encoder
    + random or ALBEF image encoder | scratch) -> datasets -> ITC + ITM (with the image ids as
    positives) -> the shared Trainer -> recall@1/5/10 both ways, ITM re-ranked, as ALBEF reports it
"""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lmtrain.commands.albef_pretrain import chance_recall
from lmtrain.data.captions import pre_caption
from lmtrain.data.image_caption_sets import load_image_caption_data
from lmtrain.data.image_text import ImageTextCollator, ImageTextDataset
from lmtrain.models.loading import checkpoint_tokenizer, model_meta
from lmtrain.objectives.image_text import ImageTextObjective, check_batch_setup
from lmtrain.run_dir import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.tasks.retrieval_init import resolve_retrieval_init
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.loggers import require_loggers
from lmtrain.training.optim import build_optimizer, build_scheduler
from lmtrain.training.precision import resolve_device
from lmtrain.training.session import fit_run
from lmtrain.training.trainer import Trainer

log = logging.getLogger(__name__)


def read_retrieval_data(cfg: DictConfig, image_size: int):
    """The pairs of ``data.train_file`` / ``data.eval_file`` (or the generated shapes when unset), images
    at ``image_size``, the training pairs cut to ``data.max_examples``."""
    data_cfg = cfg.data
    source = "files" if data_cfg.train_file else "shapes"
    data = load_image_caption_data(source, [data_cfg.train_file] if data_cfg.train_file else [],
                                   [data_cfg.eval_file] if data_cfg.eval_file else [], data_cfg.image_root,
                                   data_cfg.eval_fraction, data_cfg.split_seed, image_size,
                                   data_cfg.skip_bad_images, data_cfg.shapes_train, data_cfg.shapes_eval,
                                   key="data.train_file", allow_outside_root=data_cfg.allow_outside_root)
    if data_cfg.max_examples:
        data.train = data.train[: data_cfg.max_examples]
    return data


def run(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune ALBEF for retrieval on ``cfg.data``; returns the run summary."""
    started = time.perf_counter()
    require_loggers(cfg.trainer.loggers)
    check_batch_setup(None, cfg.trainer.batch_size, 1, 1.0)  # the batch now; the queue once the model is known
    ignored = [f"finetune.{k}" for k in ("freeze_backbone", "freeze_layers", "head_lr") if cfg.finetune.get(k)]
    if ignored:  # ALBEF has no task head: every encoder is fine-tuned, as ALBEF does
        log.warning("task=retrieval fine-tunes the whole model and ignores %s", ", ".join(ignored))
    run_dir = RunDir(hydra_run_dir())
    data = read_retrieval_data(cfg, cfg.model.image_size)
    init = resolve_retrieval_init(cfg, [pre_caption(p.caption, cfg.data.max_words) for p in data.train])
    model, tokenizer = init.model, init.tokenizer
    check_batch_setup(model.spec.queue_size, cfg.trainer.batch_size, 1, 1.0,
                      queue_key="model.queue_size" if "ALBEF" not in init.source else f"the queue size of init={cfg.init}")
    image_size = model.spec.vision.image_size
    if image_size != cfg.model.image_size:  # a pretrained ALBEF brings its own input size
        data = read_retrieval_data(cfg, image_size)
    resume_from = ckpt.resume_checkpoint(cfg.trainer.resume, run_dir.checkpoints)
    if resume_from is not None:  # a retrained (init=scratch) tokenizer may number its tokens differently
        tokenizer = checkpoint_tokenizer(resume_from)
    tokenizer.save(run_dir.path / TOKENIZER_FILE)
    max_seq_len = min(cfg.data.max_seq_len, model.spec.text.max_positions)
    common = dict(tokenizer=tokenizer, image_size=image_size, max_seq_len=max_seq_len, max_words=cfg.data.max_words,
                  crop_min_scale=cfg.data.crop_min_scale, flip=cfg.data.flip)
    train_set = ImageTextDataset(data.train, data.images, train=True, seed=cfg.trainer.seed, **common)
    eval_set = ImageTextDataset(data.eval, data.images, train=False, **common)
    device = resolve_device(cfg.trainer.device)
    model = model.to(device)
    steps_per_epoch = max(1, len(train_set) // (cfg.trainer.batch_size * cfg.trainer.grad_accum))
    objective = ImageTextObjective(mlm_weight=0.0, alpha=cfg.task.alpha, alpha_warmup_steps=steps_per_epoch,
                                   hard_negatives=cfg.task.hard_negatives, rerank_k=cfg.task.rerank_k,
                                   queue_start=cfg.task.queue_start)
    optimizer = build_optimizer(model, cfg.optim, device)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    task_meta = {"name": "retrieval", "max_seq_len": max_seq_len, "max_words": cfg.data.max_words,
                 "rerank_k": cfg.task.rerank_k}
    meta = {**model_meta(model, "albef", "finetune:retrieval", tokenizer), "task": task_meta}
    trainer = Trainer(model, objective, optimizer, scheduler, train_set, eval_set, ImageTextCollator(tokenizer.id("pad")),
                      cfg.trainer, run_dir, device, meta, run_dir.path / TOKENIZER_FILE)
    n_images = len({p.image_id for p in data.eval})
    log.info("finetune task=retrieval from %s: %d train / %d held-out pairs (%d held-out images), device %s",
             init.source, len(train_set), len(eval_set), n_images, device)
    summary = fit_run(trainer, cfg, run_dir, resume_from)
    summary = {"command": "finetune", "task": "retrieval", "init": init.source, "model": "albef", **summary,
               **chance_recall(n_images), "data": data.source, "train_pairs": len(train_set),
               "eval_pairs": len(eval_set), "eval_images": n_images, "parameters": model.num_parameters(),
               "wall_seconds": round(time.perf_counter() - started, 2),
               "config": OmegaConf.to_container(cfg, resolve=True)}
    run_dir.finish(summary, f"lmtrain finetune task=retrieval — {run_dir.path}",
                   [f"lmtrain predict ckpt={run_dir.path} input=<captions file> images=<folder of images>"])
    return summary
