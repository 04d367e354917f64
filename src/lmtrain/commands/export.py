"""`lmtrain export`: a checkpoint as a Hugging Face folder (``format=hf``) that transformers loads, with its card,
or as its full weights once (``format=safetensors``: a weights-only lmtrain checkpoint, e.g. of a sharded one)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lmtrain import checkpoint_files as ckpt
from lmtrain.config import ExportConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.errors import UserError
from lmtrain.models.hf_task_heads import export_model
from lmtrain.models.loading import load_checkpoint, locate_model
from lmtrain.runs.model_card import card_facts, write_model_card
from lmtrain.training.checkpoint import write_weights_folder

log = logging.getLogger(__name__)
USAGE = "lmtrain export ckpt=outputs/finetune/<run> format=hf|safetensors out=my-model"
_MODEL_TYPE = {"bert": "bert", "roberta": "roberta", "gpt": "gpt2", "gpt2": "gpt2"}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt`` to ``cfg.out``; returns what was written."""
    cfg: ExportConfig = config_objects(cfg, "export")
    if not cfg.ckpt or not cfg.out:
        raise UserError(f"ckpt and out must both be set: `{USAGE}`.")
    checkpoint = locate_model(cfg.ckpt, key="ckpt", best=True)
    # safetensors keeps lmtrain's own layout, so every model family exports; Hugging Face has Transformers only
    families = ("transformer", "elmo", "albef") if cfg.format == "safetensors" else ("transformer",)
    model, tokenizer, meta = load_checkpoint(checkpoint, "cpu", key="ckpt", families=families)
    tokenizer_file = checkpoint / ckpt.TOKENIZER
    tokenizer_file = tokenizer_file if tokenizer_file.is_file() else None
    if cfg.format == "safetensors":
        out = write_weights_folder(Path(cfg.out).expanduser(), model, meta, tokenizer_file)
        print(f"wrote {out} (from {checkpoint})")
        return {"out": str(out), "checkpoint": str(checkpoint), "format": cfg.format}
    model_type = cfg.model_type or _MODEL_TYPE.get(meta.get("model_name", ""))
    if model_type is None:
        raise UserError(f"ckpt={cfg.ckpt} is a '{meta.get('model_name')}' model; say which Hugging Face "
                        "architecture to write with model_type=bert|roberta|gpt2.")
    out = export_model(model, model_type, cfg.out, tokenizer_file, tokenizer.roles, tokenizer.ids, meta.get("task"))
    write_model_card(out, card_facts(cfg.ckpt, checkpoint, meta, out, model.num_parameters()))
    print(f"wrote {out} (from {checkpoint})")
    return {"out": str(out), "checkpoint": str(checkpoint), "model_type": model_type}
