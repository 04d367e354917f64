"""`lmtrain pretrain`: every part of a pretraining run, built in one place, top to bottom.

    model family (model._target_) + objective (objective._target_)
    -> the objective's examples (corpus -> tokenizer -> cached examples; or image-caption pairs)
    -> the family's model with the objective's heads -> the objective's loss -> the run assembly

Nothing here tests a family's or an objective's name: each is a plug that knows its own parts.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from lmtrain.config.commands import PretrainConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.models.families import ModelFamily
from lmtrain.models.loading import model_meta
from lmtrain.objectives.plug import PretrainingObjective
from lmtrain.plugs import plug_class
from lmtrain.training.assembly import RunParts, fit, start_run


def run(cfg: DictConfig) -> dict[str, Any]:
    """Pretrain ``cfg.model`` with ``cfg.objective`` on ``cfg.data``; returns the run summary."""
    cfg: PretrainConfig = config_objects(cfg, "pretrain")
    family = plug_class(cfg.model, "model", ModelFamily)(cfg.model)
    objective = plug_class(cfg.objective, "objective", PretrainingObjective)(cfg.objective)
    objective.check(family.name, cfg.data.max_seq_len)
    context = start_run(cfg)
    sets = objective.prepare(cfg, context)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights on every rank
    model = family.build(sets.tokenizer, objective.head_names(), cfg.data.max_seq_len).to(context.device)
    loss = objective.loss(sets, context.steps_per_epoch(len(sets.train_set), cfg.trainer))
    run_path = context.run_dir.path
    return fit(context, RunParts(
        model, loss, sets.train_set, sets.eval_set, sets.collate, sets.tokenizer,
        meta={**model_meta(model, cfg.model.name, objective.name, sets.tokenizer),
              "objective_config": objective.settings()},  # how `lmtrain evaluate` rebuilds the objective
        summary={"command": "pretrain", "model": cfg.model.name, "objective": objective.name},
        title=f"lmtrain pretrain model={cfg.model.name} — {run_path}",
        next_commands=[*objective.next_commands(run_path), *family.next_commands(run_path)],
        description=f"{cfg.model.name}: {model.num_parameters() / 1e6:.2f}M parameters, {sets.description}",
        report=lambda trainer: {**objective.baselines(sets), **sets.summary, "parameters": model.num_parameters()}),
        cfg)
