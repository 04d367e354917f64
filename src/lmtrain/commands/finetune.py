"""`lmtrain finetune`: every part of a fine-tuning run, built in one place, top to bottom.

task data -> model (backbone from a pretrain run | checkpoint | HF folder | scratch, under the task's
head; ALBEF for retrieval) + its tokenizer -> encoded datasets -> objective -> the run assembly
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from lmtrain.config.commands import FinetuneConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.errors import UserError
from lmtrain.files.checkpoints import read_model_meta
from lmtrain.models.loading import model_meta
from lmtrain.run_folder.config_record import typed_keys
from lmtrain.tasks import build_task
from lmtrain.tasks.example_cache import cached_datasets
from lmtrain.tasks.model import describe
from lmtrain.tasks.report import evaluation_report
from lmtrain.tasks.step_defaults import task_max_steps
from lmtrain.training.assembly import RunParts, fit, start_run

log = logging.getLogger(__name__)


def _max_seq_len(cfg: FinetuneConfig, limit: int | None, source: str) -> int:
    """``data.max_seq_len`` within the model's ``limit`` positions.

    A data preset's value over the limit is cut to it (said in the log), in ``cfg.data`` itself, the object the task
    holds too, so the summary's config and the task's model.json entry record the cut. A value typed on the command
    line is the user's: honoured or refused, never cut.

    Raises:
        UserError: ``data.max_seq_len`` typed longer than the model's positions.
    """
    if limit is None or cfg.data.max_seq_len <= limit:
        return cfg.data.max_seq_len
    if "data.max_seq_len" in typed_keys():
        raise UserError(
            f"data.max_seq_len={cfg.data.max_seq_len} is longer than the {limit} positions of the model from "
            f"{source}; use data.max_seq_len={limit} or less (or leave the key out: the data preset's value is then "
            "cut to the model's positions)."
        )
    log.info(
        "data.max_seq_len: the data preset's %d is longer than the model's %d positions; using %d (set "
        "data.max_seq_len to choose another length)",
        cfg.data.max_seq_len,
        limit,
        limit,
    )
    cfg.data.max_seq_len = limit
    return cfg.data.max_seq_len


def _choose_init(cfg: FinetuneConfig, task: Any, context: Any) -> str | None:
    """Set ``cfg.init`` when it is not given: the newest pretrain run of this project that fits ``task`` (a resumed
    run keeps the one it started from). Says which first; returns that line for the summary (None: init given)."""
    if cfg.init not in (None, "", "auto"):
        return None
    started = read_model_meta(context.resume_from).get("init_chosen") if context.resume_from else None
    if started:
        cfg.init, line = started["run"], started["line"]
    else:
        choice = task.newest_backbone()
        cfg.init, line = str(choice.run), choice.line
    log.info("%s", line)
    return line


def run(composed: DictConfig) -> dict[str, Any]:
    """Fine-tune a backbone on ``cfg.task`` with ``cfg.data``; returns the run summary."""
    cfg: FinetuneConfig = config_objects(composed, "finetune")
    context = start_run(cfg)
    task = build_task(cfg.task, cfg.data)
    task.read()  # the data's own errors first: they need no backbone
    chosen = _choose_init(cfg, task, context)
    built = task.build_model(cfg, context)
    model, tokenizer = context.place(built.model), built.tokenizer
    cfg.trainer.max_steps, steps_note = task_max_steps(cfg.task, cfg.trainer.max_steps, built.model_name)
    max_seq_len = _max_seq_len(cfg, built.max_positions, built.source)
    with context.node_main_first():  # each node's first process encodes (or reads the cache), the others read
        train_set, eval_set = cached_datasets(task, tokenizer, max_seq_len)
    objective = task.objective(cfg.finetune.class_weights)
    run_dir = context.run_dir

    def report(trainer) -> dict[str, Any]:
        with trainer.gathered():
            held_out = evaluation_report(trainer)  # the final model's, so before the task's report loads the best one
        return {
            **task.baselines(tokenizer),
            **describe(model),
            **task.describe_data(),
            **held_out,
            **task.final_report(trainer, tokenizer, cfg.task),
        }

    return fit(
        context,
        RunParts(
            model,
            objective,
            train_set,
            eval_set,
            task.collator(tokenizer),
            tokenizer,
            meta={
                **model_meta(model, built.model_name, f"finetune:{task.name}", tokenizer),
                "task": task.meta(),
                **({"init_chosen": {"run": cfg.init, "line": chosen}} if chosen else {}),
            },
            summary={
                "command": "finetune",
                "task": task.name,
                "init": built.source,
                "model": built.model_name,
                **({"init_chosen": chosen} if chosen else {}),
            },
            title=f"lmtrain finetune task={task.name} — {run_dir.path}",
            next_commands=[task.predict_command(run_dir.path)],
            description=f"finetune task={task.name} from {built.source}: {len(train_set)} train / {len(eval_set)} "
            "held-out examples",
            head_lr=built.head_lr,
            report=report,
            steps_note=steps_note,
        ),
        cfg,
    )
