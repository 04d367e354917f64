"""`lmtrain evaluate`: a checkpoint's held-out loss / perplexity or masked-token accuracy.

Rebuilds the checkpoint's model, prepares the corpus with the checkpoint's own tokenizer and the
objective it was trained with, runs that objective over the held-out split (or every sequence),
and writes the metrics to `summary.json` and `metrics.jsonl` in the run directory.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset, Dataset

from lmtrain.config import EvaluateConfig, TextDataConfig, TokenizerConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.data.collate import PadCollator
from lmtrain.data.pretraining import prepare_pretraining_data
from lmtrain.errors import UserError
from lmtrain.models.loading import load_checkpoint, locate_model
from lmtrain.objectives.text_objectives import TextPretraining, objective_from_meta
from lmtrain.run_dir import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.training.evaluation import evaluate_objective
from lmtrain.training.precision import resolve_device
from lmtrain.training.progress import print_summary

log = logging.getLogger(__name__)

@torch.no_grad()
def _warn_if_data_differs(checkpoint, data_cfg: TextDataConfig) -> None:
    """Warn when the corpus or sequence length differ from the ones the run trained with."""
    config_file = checkpoint.parent.parent / ".hydra" / "config.yaml"
    if not config_file.exists():
        return
    trained = OmegaConf.load(config_file).get("data") or {}
    for key in ("name", "max_seq_len"):
        if key in trained and trained[key] != getattr(data_cfg, key):
            log.warning("the checkpoint was trained with data.%s=%s but is evaluated with data.%s=%s; "
                        "pass data.%s=%s to measure it on the data it was trained for",
                        key, trained[key], key, getattr(data_cfg, key), key, trained[key])


def _dataset(cfg: EvaluateConfig, objective: TextPretraining, tokenizer, data) -> Dataset:
    """The examples to evaluate: the held-out store, or train and held-out together (masks fixed by ``seed``)."""
    train, held_out = objective.evaluation_sets(data, tokenizer, cfg.seed)
    return held_out if cfg.split == "eval" else ConcatDataset([train, held_out])


def run(cfg) -> dict[str, Any]:
    """Run `lmtrain evaluate` with the composed config ``cfg`` (an EvaluateConfig); returns the summary."""
    cfg: EvaluateConfig = config_objects(cfg, "evaluate")
    started = time.perf_counter()
    if not cfg.ckpt:
        raise UserError("ckpt is not set: give the run directory or checkpoint to evaluate, e.g. "
                        "`lmtrain evaluate ckpt=outputs/pretrain/<run>`.")
    device = resolve_device(cfg.device, key="device")
    checkpoint = locate_model(cfg.ckpt, key="ckpt")
    model, tokenizer, meta = load_checkpoint(checkpoint, device, key="ckpt", families=("transformer", "elmo"))
    plug = objective_from_meta(meta)
    objective = plug.loss(None, 1)
    missing = [h for h in objective.head_names if h not in model.heads]
    if missing:
        raise UserError(f"ckpt={cfg.ckpt} has heads {model.head_names} but its objective {meta['objective']} "
                        f"needs {list(objective.head_names)}; evaluate a pretraining checkpoint.")
    limit = model.spec.max_positions  # None for LSTMs: no limit
    if limit is not None and cfg.data.max_seq_len > limit:
        raise UserError(f"data.max_seq_len={cfg.data.max_seq_len} is longer than the model's "
                        f"{limit} positions; lower data.max_seq_len.")
    _warn_if_data_differs(checkpoint, cfg.data)

    run_dir = RunDir(hydra_run_dir())
    tokenizer.save(run_dir.path / TOKENIZER_FILE)
    tok_cfg = TokenizerConfig(path=str(run_dir.path / TOKENIZER_FILE), special_tokens=dict(tokenizer.roles))
    data_cfg = dataclasses.replace(cfg.data, dupe_factor=1)  # copies only repeat training masks
    data = prepare_pretraining_data(data_cfg, tok_cfg, plug)
    dataset = _dataset(cfg, plug, tokenizer, data)
    metrics, sequences = evaluate_objective(model, objective, dataset, PadCollator(tokenizer.id("pad")),
                                            cfg.batch_size, cfg.max_batches, device)
    metrics = {f"eval/{k}": v for k, v in metrics.items()}
    step = meta.get("step", 0)
    run_dir.log(step, metrics)
    summary = {
        "command": "evaluate",
        "ckpt": str(checkpoint),
        "model": meta.get("model_name"),
        "objective": meta["objective"],
        "step": step,
        "data": cfg.data.name,
        "split": cfg.split,
        "sequences": sequences,
        **metrics,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "config": dataclasses.asdict(cfg),
    }
    run_dir.write_summary(summary)
    print_summary(f"lmtrain evaluate {meta.get('model_name')} step {step} ({cfg.split}) — {run_dir.path}", summary)
    return summary
