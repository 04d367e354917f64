"""`lmtrain evaluate`: a checkpoint's held-out loss / perplexity or masked-token accuracy.

Rebuilds the checkpoint's model, prepares the corpus with the checkpoint's own tokenizer and the
objective it was trained with, runs that objective over the held-out split (or every sequence),
and writes the metrics to `summary.json` and `metrics.jsonl` in the run directory. The corpus is
the run's own, as saved in the run (its held-out split is the one it trained beside), unless a data
preset is given.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import ConcatDataset

from lmtrain.config import EvaluateConfig, TextDataConfig, TokenizerConfig
from lmtrain.config.checks import ConfigRangeError, range_error
from lmtrain.config.plug_nodes import config_objects
from lmtrain.data.collate import PadCollator
from lmtrain.data.pretraining import prepare_pretraining_data
from lmtrain.errors import UserError
from lmtrain.models.capabilities import LANGUAGE_MODELS
from lmtrain.models.loading import load_checkpoint, locate_model
from lmtrain.objectives.text_objectives import TextPretraining, objective_from_meta
from lmtrain.run_folder.claim import read_saved_config
from lmtrain.run_folder.layout import TOKENIZER_FILE, RunDir, hydra_run_dir
from lmtrain.training.evaluation import EvaluationSet, evaluate_objective
from lmtrain.training.precision import resolve_device
from lmtrain.training.progress import print_summary

log = logging.getLogger(__name__)


def _run_folder(checkpoint: Path) -> Path | None:
    """The run directory holding ``checkpoint`` (``<run>/checkpoints/step-N``), or None (a Hugging Face folder)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def _typed_data(values: Any, where: str) -> TextDataConfig:
    """``values`` (the run's saved data with the keys given) as a TextDataConfig, its ranges checked."""
    try:
        data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TextDataConfig), values))
    except ConfigRangeError as error:
        error.field = f"data.{error.field}"
        raise range_error(error, "evaluate") from None
    except Exception as error:  # OmegaConf's validation errors: a key or a type the schema refuses
        raise UserError(
            f"{where}: {' '.join(str(error).split())}; fix the data key or choose the data to "
            "evaluate on (data=lee_wiki, data=text data.train_files=[...])."
        ) from None
    if not isinstance(data, TextDataConfig):  # a structured config's object is its dataclass
        raise TypeError(f"the data config became a {type(data).__name__}")
    return data


def data_to_evaluate(cfg: EvaluateConfig, checkpoint: Path) -> tuple[TextDataConfig, str]:
    """The data ``lmtrain evaluate`` reads, and where it comes from (``run`` or ``given``).

    A data preset given (``data=...``) is evaluated on as it is. Otherwise the run's own data, as saved in
    the run (so its held-out split is the one it was trained beside), with the ``data.<key>`` values given.

    Raises:
        UserError: no data given for a checkpoint without its run's saved config, or a key that does not fit.
    """
    run = _run_folder(checkpoint)
    saved = (read_saved_config(run) or {}).get("data") if run is not None else None
    if isinstance(cfg.data, TextDataConfig):  # a data preset given (EvaluateConfig refuses other dataclasses)
        trained = saved or {}
        differs = [
            f"data.{k}={trained[k]}"
            for k in ("name", "max_seq_len")
            if k in trained and trained[k] != getattr(cfg.data, k)
        ]
        if differs:
            log.info(
                "evaluating on the data given (data.name=%s, data.max_seq_len=%d), not on the run's own (%s); "
                "leave out the data settings to measure the run's own held-out split",
                cfg.data.name,
                cfg.data.max_seq_len,
                ", ".join(differs),
            )
        return cfg.data, "given"
    if not saved:
        raise UserError(
            f"ckpt={cfg.ckpt} comes without its run's saved config (.hydra/config.yaml), so the data it "
            "was trained on is unknown: choose the data to evaluate on, e.g. `lmtrain evaluate "
            f"ckpt={cfg.ckpt} data=lee_wiki` or `... data=text data.train_files=[my.txt]`."
        )
    data = _typed_data(OmegaConf.merge(saved, cfg.data), f"the data of the run {run} (its .hydra/config.yaml)")
    changed = "".join(f", data.{k}={v}" for k, v in cfg.data.items())
    log.info(
        "data: the run's own, %s (data.source=%s, held-out split as in training%s)", data.name, data.source, changed
    )
    return data, "run"


def _dataset(cfg: EvaluateConfig, objective: TextPretraining, tokenizer, data) -> EvaluationSet:
    """The examples to evaluate: the held-out store, or train and held-out together (masks fixed by ``seed``)."""
    train, held_out = objective.evaluation_sets(data, tokenizer, cfg.seed)
    if cfg.split == "eval":
        return held_out
    return ConcatDataset([train, held_out])


def _prepared_data(
    data_cfg: TextDataConfig, data_from: str, plug: TextPretraining, tokenizer, run_dir: RunDir, checkpoint: Path
):
    """The evaluation text prepared with the checkpoint's tokenizer (saved into the run folder first); an
    error about the run's own data (``data_from`` "run") says where that data was chosen."""
    tokenizer.save(run_dir.path / TOKENIZER_FILE)
    tok_cfg = TokenizerConfig(path=str(run_dir.path / TOKENIZER_FILE), special_tokens=dict(tokenizer.roles))
    try:
        return prepare_pretraining_data(data_cfg, tok_cfg, plug)
    except UserError as error:
        if data_from != "run":
            raise
        raise UserError(
            f"{error} (The data is the run's own, as saved in {_run_folder(checkpoint)}/.hydra: run "
            "evaluate from the folder the run was trained in, or choose the data with data=...)"
        ) from None


def run(composed: DictConfig) -> dict[str, Any]:
    """Run `lmtrain evaluate` with the composed config ``composed`` (an EvaluateConfig); returns the summary."""
    cfg: EvaluateConfig = config_objects(composed, "evaluate")
    started = time.perf_counter()
    if not cfg.ckpt:
        raise UserError(
            "ckpt is not set: give the run directory or checkpoint to evaluate, e.g. "
            "`lmtrain evaluate ckpt=outputs/pretrain/<run>`."
        )
    device = resolve_device(cfg.device, key="device")
    checkpoint = locate_model(cfg.ckpt, key="ckpt")
    model, tokenizer, meta = load_checkpoint(checkpoint, device, key="ckpt", needs=LANGUAGE_MODELS)
    plug = objective_from_meta(meta)
    objective = plug.loss(None, 1)
    missing = [h for h in objective.head_names if h not in model.heads]
    if missing:
        raise UserError(
            f"ckpt={cfg.ckpt} has heads {model.head_names} but its objective {meta['objective']} "
            f"needs {list(objective.head_names)}; evaluate a pretraining checkpoint."
        )
    data_cfg, data_from = data_to_evaluate(cfg, checkpoint)
    limit = getattr(model.spec, "max_positions", None)  # None for ELMo's LSTMs: no limit
    if limit is not None and data_cfg.max_seq_len > limit:
        raise UserError(
            f"data.max_seq_len={data_cfg.max_seq_len} is longer than the model's "
            f"{limit} positions; lower data.max_seq_len."
        )

    run_dir = RunDir(hydra_run_dir())
    data_cfg = dataclasses.replace(data_cfg, dupe_factor=1)  # copies only repeat training masks
    dataset = _dataset(cfg, plug, tokenizer, _prepared_data(data_cfg, data_from, plug, tokenizer, run_dir, checkpoint))
    metrics, sequences = evaluate_objective(
        model, objective, dataset, PadCollator(tokenizer.id("pad")), cfg.batch_size, cfg.max_batches, device
    )
    metrics = {f"eval/{k}": v for k, v in metrics.items()}
    step = meta.get("step", 0)
    run_dir.log(step, metrics)
    summary = {
        "command": "evaluate",
        "ckpt": str(checkpoint),
        "model": meta.get("model_name"),
        "objective": meta["objective"],
        "step": step,
        "data": data_cfg.name,
        "data_from": data_from,
        "split": cfg.split,
        "sequences": sequences,
        **metrics,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "config": {**dataclasses.asdict(cfg), "data": dataclasses.asdict(data_cfg)},
    }
    run_dir.write_summary(summary)
    print_summary(f"lmtrain evaluate {meta.get('model_name')} step {step} ({cfg.split}) — {run_dir.path}", summary)
    return summary
