"""`lmtrain pretrain`: every part of a pretraining run, built in one place, top to bottom.

    text:   corpus -> tokenizer -> packed examples -> Transformer | ELMo biLM -> objective -> the run assembly
    albef:  image-caption pairs (generated shapes | captions files) -> caption tokenizer -> datasets with
            crops, flips and MLM masks -> ALBEF -> ITC + ITM + MLM -> the run assembly
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Subset

from lmtrain.data.baselines import majority_token_accuracy, unigram_perplexity
from lmtrain.data.collate import PadCollator
from lmtrain.data.datasets import PretrainingDataset
from lmtrain.data.image_caption_sets import caption_tokenizer, load_image_caption_data
from lmtrain.data.image_text import ImageTextCollator, ImageTextDataset
from lmtrain.data.pretraining import masking_spec, prepare_pretraining_data
from lmtrain.errors import UserError
from lmtrain.models.albef import AlbefModel, resolve_albef_spec
from lmtrain.models.char_cnn import tokenizer_strings
from lmtrain.models.elmo import build_elmo, resolve_elmo_spec
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.loading import model_meta
from lmtrain.models.spec import resolve_spec
from lmtrain.objectives import build_objective
from lmtrain.objectives.image_text import ImageTextObjective, check_batch_setup
from lmtrain.objectives.retrieval import chance_recall
from lmtrain.training.assembly import RunContext, RunParts, fit, start_run

# examples a baseline is estimated on: plenty for unigram statistics, and memory stays flat
BASELINE_SEQUENCES = 50_000


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


def _text_parts(cfg: DictConfig, context: RunContext) -> RunParts:
    """A language model (Transformer or ELMo) on a text corpus, with ``cfg.objective``."""
    with context.main_rank_first():  # rank 0 tokenizes and caches; the others then read its cache
        data = prepare_pretraining_data(cfg.data, cfg.tokenizer, cfg.objective)
    tokenizer = data.tokenizer
    objective = build_objective(cfg.objective.name)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights on every rank
    model = _build_model(cfg, tokenizer, objective.head_names).to(context.device)
    dynamic = masking_spec(cfg.objective, tokenizer) if cfg.objective.name == "mlm" and cfg.objective.masking == "dynamic" else None
    train_set = PretrainingDataset(data.train, dynamic, seed=cfg.trainer.seed)
    eval_set = PretrainingDataset(data.eval, dynamic, seed=cfg.trainer.seed + 1)
    return RunParts(
        model, objective, train_set, eval_set, PadCollator(tokenizer.id("pad")), tokenizer,
        meta=model_meta(model, cfg.model.name, cfg.objective.name, tokenizer),
        summary={"command": "pretrain", "model": cfg.model.name, "objective": cfg.objective.name},
        title=f"lmtrain pretrain model={cfg.model.name} — {context.run_dir.path}",
        next_commands=_next_commands(context.run_dir.path, cfg),
        description=f"{cfg.model.name}: {model.num_parameters() / 1e6:.2f}M parameters, {len(train_set)} train / "
                    f"{len(eval_set)} held-out sequences",
        report=lambda trainer: {**_baselines(cfg.objective.name, train_set, eval_set, tokenizer.vocab_size),
                                "parameters": model.num_parameters()})


def _albef_objective(obj_cfg: Any, steps_per_epoch: int) -> ImageTextObjective:
    """ALBEF's weighted losses from the `objective` group; alpha ramps up over the first epoch."""
    return ImageTextObjective(itc_weight=obj_cfg.itc_weight, itm_weight=obj_cfg.itm_weight,
                              mlm_weight=obj_cfg.mlm_weight, alpha=obj_cfg.alpha, alpha_warmup_steps=steps_per_epoch,
                              hard_negatives=obj_cfg.hard_negatives, rerank_k=obj_cfg.rerank_k,
                              queue_start=obj_cfg.queue_start)


def _albef_parts(cfg: DictConfig, context: RunContext) -> RunParts:
    """ALBEF on image-caption pairs (generated shapes | captions files): ITC + ITM + MLM."""
    if cfg.objective.name != "albef":
        raise UserError(f"model.family=albef trains with objective=albef, not {cfg.objective.name}.")
    world_size, data_cfg = context.dist.world_size, cfg.data
    check_batch_setup(cfg.model.queue_size, cfg.trainer.batch_size, world_size, cfg.objective.itm_weight)
    data = load_image_caption_data(data_cfg.source, list(data_cfg.train_files), list(data_cfg.eval_files),
                                   data_cfg.image_root, data_cfg.eval_fraction, data_cfg.split_seed,
                                   cfg.model.image_size, data_cfg.skip_bad_images, data_cfg.shapes_train,
                                   data_cfg.shapes_eval, allow_outside_root=data_cfg.allow_outside_root)
    tokenizer = context.run_tokenizer(lambda: caption_tokenizer(data, cfg.tokenizer, data_cfg.max_words,
                                                                data_cfg.cache_dir))
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
    objective = _albef_objective(cfg.objective, context.steps_per_epoch(len(train_set), cfg.trainer))
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights on every rank
    model = AlbefModel(spec, objective.head_names).to(context.device)
    run = context.run_dir.path
    return RunParts(
        model, objective, train_set, eval_set, ImageTextCollator(tokenizer.id("pad")), tokenizer,
        meta=model_meta(model, cfg.model.name, cfg.objective.name, tokenizer),
        summary={"command": "pretrain", "model": cfg.model.name, "objective": cfg.objective.name},
        title=f"lmtrain pretrain model={cfg.model.name} — {run}",
        next_commands=[f"lmtrain finetune task=retrieval init={run}",
                       f"lmtrain predict ckpt={run} input=<captions file> images=<folder of images>"],
        description=f"albef: {model.num_parameters() / 1e6:.2f}M trainable parameters, {len(train_set)} train / "
                    f"{len(eval_set)} held-out pairs ({data.source})",
        report=lambda trainer: {**chance_recall(len({p.image_id for p in data.eval})), "data": data.source,
                                "train_pairs": len(train_set), "eval_pairs": len(eval_set),
                                "parameters": model.num_parameters()})


def run(cfg: DictConfig) -> dict[str, Any]:
    """Pretrain ``cfg.model`` with ``cfg.objective`` on ``cfg.data``; returns the run summary."""
    context = start_run(cfg)
    parts = _albef_parts(cfg, context) if cfg.model.family == "albef" else _text_parts(cfg, context)
    return fit(context, parts, cfg)
