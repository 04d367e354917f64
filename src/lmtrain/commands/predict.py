"""`lmtrain predict`: tag, classify or complete raw text with a fine-tuned run, one input per line.

Plain lines go to stdout (one per input line, in input order; an empty line for a blank one) unless
``output=`` names a JSON lines file; logs go to stderr.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from omegaconf import DictConfig

from lmtrain.config import PredictConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability
from lmtrain.models.loading import load_checkpoint, locate_model, model_capabilities, read_meta
from lmtrain.tasks import task_from_meta
from lmtrain.tasks.prediction_io import USAGE, check_output, read_input_lines, write_records
from lmtrain.training.precision import resolve_device

log = logging.getLogger(__name__)


def finetuned_checkpoint(path: str | None):
    """The checkpoint ``ckpt`` names: a run's ``checkpoints/best`` (else ``last``), or a checkpoint directory."""
    if not path:
        raise UserError(f"ckpt is not set: give a fine-tuned run directory or checkpoint (`{USAGE}`).")
    return locate_model(path, key="ckpt", best=True)


def run(composed: DictConfig) -> list[dict[str, Any]]:
    """Predict for every line of ``cfg.input``; returns the records."""
    cfg: PredictConfig = config_objects(composed, "predict")
    checkpoint = finetuned_checkpoint(cfg.ckpt)
    check_output(cfg.output, [cfg.input, dict(cfg.task or {}).get("captions")])  # retrieval reads task.captions too
    meta = read_meta(checkpoint)
    if Capability.IMAGE_TEXT in model_capabilities(meta):  # images and captions, not lines of text
        from lmtrain.tasks.retrieval import RetrievalTask
        from lmtrain.tasks.retrieval_predict import predict_retrieval

        return predict_retrieval(cfg, checkpoint, RetrievalTask.predict_options(cfg.task))
    info = meta.get("task")
    if not info:
        raise UserError(
            f"ckpt={cfg.ckpt} is a pretrained model, not a fine-tuned one: fine-tune it first "
            "(`lmtrain finetune task=ner init=...`), or use `lmtrain generate` on pretrained models."
        )
    task = task_from_meta(info, scheme=info.get("scheme", "bio"), max_seq_len=info.get("max_seq_len", 128))
    options = task.predict_options(cfg.task)  # the task's own keys, checked before anything is read
    input_lines = read_input_lines(cfg.input)  # every line checked before the model is loaded
    lines = [line for line in input_lines if line.strip()]
    device = resolve_device(cfg.device, key="device")
    model, tokenizer, meta = load_checkpoint(
        checkpoint, device, key="ckpt", needs=(Capability.TOKEN_FEATURES, Capability.CAUSAL_LM)
    )
    log.info("predict: %d input(s) with %s (task=%s)", len(lines), checkpoint, info["name"])
    records = task.predict(
        model, tokenizer, lines, cfg.batch_size, device, pair=info.get("pair", False), **dataclasses.asdict(options)
    )
    write_records(records, cfg.output, task.format, input_lines)
    return records
