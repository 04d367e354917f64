"""`lmtrain pretrain`: every part of a pretraining run, built in one place, top to bottom.

    model family (model._target_) + objective (objective._target_)
    -> [init=: the starting weights and their tokenizer (continued pretraining)]
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
from lmtrain.errors import UserError
from lmtrain.models.families import ModelFamily
from lmtrain.models.loading import model_meta
from lmtrain.models.warm_start import WarmStart, conflicting_overrides, describe, warm_start
from lmtrain.objectives.plug import PretrainingObjective
from lmtrain.plugs import plug_class
from lmtrain.training.assembly import RunContext, RunParts, fit, start_run


def _command_line_overrides() -> list[str]:
    """The overrides this run was started with (none when composed outside Hydra's app, as in tests)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _continue_from(cfg: PretrainConfig, init: str, objective: PretrainingObjective) -> WarmStart:
    """The weights ``init`` (``cfg.init``) names, with the objective's heads; refuses what cannot apply to them."""
    conflicts = conflicting_overrides(_command_line_overrides())
    if conflicts:
        raise UserError(
            f"init={cfg.init} brings its own dimensions and tokenizer, so {', '.join(conflicts)} cannot "
            "apply; drop them (or leave out init= to build a new model)."
        )
    start = warm_start(init, objective.head_names(), needs=objective.needs)
    objective.check(start.capabilities, f"init={cfg.init} ({start.family} family)", cfg.data.max_seq_len)
    objective.check_model(start.model, f"init={cfg.init}")
    limit = getattr(start.model.spec, "max_positions", None)  # None for ELMo's LSTMs: no limit
    if limit is not None and cfg.data.max_seq_len > limit:
        raise UserError(
            f"data.max_seq_len={cfg.data.max_seq_len} is longer than the {limit} positions of "
            f"init={cfg.init}; use data.max_seq_len={limit} or less."
        )
    return start


def _use_its_tokenizer(cfg: PretrainConfig, start: WarmStart, context: RunContext) -> None:
    """Point ``tokenizer.path`` at the starting model's tokenizer (saved in the run directory by rank 0) and
    evaluate the starting weights at step 0, so the gain of the adaptation is in summary.json."""
    with context.main_rank_first():
        if context.dist.is_main:
            start.tokenizer.save(context.tokenizer_path)
    cfg.tokenizer.path = str(context.tokenizer_path)
    cfg.tokenizer.special_tokens = dict(start.tokenizer.roles)
    cfg.trainer.eval_at_start = True


def run(composed: DictConfig) -> dict[str, Any]:
    """Pretrain ``cfg.model`` with ``cfg.objective`` on ``cfg.data`` (from ``cfg.init``'s weights if given)."""
    cfg: PretrainConfig = config_objects(composed, "pretrain")
    family = plug_class(cfg.model, "model", ModelFamily)(cfg.model)
    objective = plug_class(cfg.objective, "objective", PretrainingObjective)(cfg.objective)
    start = _continue_from(cfg, cfg.init, objective) if cfg.init else None
    if start is None:
        objective.check(
            family.config_capabilities(), f"model={cfg.model.name} ({family.name} family)", cfg.data.max_seq_len
        )
    context = start_run(cfg)
    if start is not None:
        _use_its_tokenizer(cfg, start, context)
    sets = objective.prepare(cfg, context)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights on every rank
    model = context.place(
        start.model
        if start
        else context.build_model(lambda: family.build(sets.tokenizer, objective.head_names(), cfg.data.max_seq_len))
    )
    loss = objective.loss(sets, context.steps_per_epoch(len(sets.train_set), cfg.trainer))
    name = start.model_name if start else cfg.model.name
    run_path = context.run_dir.path
    return fit(
        context,
        RunParts(
            model,
            loss,
            sets.train_set,
            sets.eval_set,
            sets.collate,
            sets.tokenizer,
            meta={
                **model_meta(model, name, objective.name, sets.tokenizer),
                "family_target": f"{type(family).__module__}.{type(family).__qualname__}",  # a user's family too
                "objective_config": objective.settings(),
            },  # how `lmtrain evaluate` rebuilds the objective
            summary={
                "command": "pretrain",
                "model": name,
                "objective": objective.name,
                **(describe(start) if start else {}),
            },
            title=f"lmtrain pretrain model={name}{f' init={cfg.init}' if start else ''} — {run_path}",
            next_commands=[*objective.next_commands(run_path), *family.next_commands(run_path)],
            description=f"{name}: {model.num_parameters() / 1e6:.2f}M parameters"
            f"{f' from {start.source}' if start else ''}, {sets.description}",
            report=lambda trainer: {**objective.baselines(sets), **sets.summary, "parameters": model.num_parameters()},
            data_digests=sets.digests,
        ),
        cfg,
    )
