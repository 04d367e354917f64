"""`lmtrain export`: a checkpoint as a Hugging Face folder (``format=hf``) that transformers loads, with its card,
or as its full weights once (``format=safetensors``: a weights-only lmtrain checkpoint, e.g. of a sharded one)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from safetensors import SafetensorError

from lmtrain.config import ExportConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from lmtrain.models.capabilities import Capability
from lmtrain.models.hf_names import EXPORT_MODEL_TYPES
from lmtrain.models.hf_task_heads import export_model
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.loading import load_checkpoint, locate_model
from lmtrain.runs.export_folder import check_out_folder, export_folder
from lmtrain.runs.model_card import card_facts, write_model_card
from lmtrain.training.checkpoint import out_of_space, write_weights_folder

log = logging.getLogger(__name__)
USAGE = "lmtrain export ckpt=outputs/finetune/<run> format=hf|safetensors out=my-model"


def run(composed: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt`` to ``cfg.out``; returns what was written.

    Everything that can fail on the user's files (the target folder, the checkpoint, the run's
    records for the card) is read and checked before anything is written; the files are then
    written into a temporary folder beside ``out`` and swapped in whole (see :mod:`lmtrain.runs.export_folder`).
    """
    cfg: ExportConfig = config_objects(composed, "export")
    if not cfg.ckpt or not cfg.out:
        raise UserError(f"ckpt and out must both be set: `{USAGE}`.")
    checkpoint = locate_model(cfg.ckpt, key="ckpt", best=True)
    out = check_out_folder(cfg.out, checkpoint)
    # safetensors keeps lmtrain's own layout; Hugging Face needs a family that maps to one of its architectures
    needs = Capability.WEIGHTS_EXPORT if cfg.format == "safetensors" else Capability.HF_EXPORT
    model, tokenizer, meta = load_checkpoint(checkpoint, "cpu", key="ckpt", needs=needs)
    saved_tokenizer = checkpoint / ckpt.TOKENIZER
    tokenizer_file = saved_tokenizer if saved_tokenizer.is_file() else None
    model_type = cfg.model_type or EXPORT_MODEL_TYPES.get(meta.get("model_name", ""))
    if cfg.format == "hf" and model_type is None:
        raise UserError(
            f"ckpt={cfg.ckpt} is a '{meta.get('model_name')}' model; say which Hugging Face "
            "architecture to write with model_type=bert|roberta|gpt2."
        )
    facts = card_facts(cfg.ckpt, checkpoint, meta, out.name, model.num_parameters()) if cfg.format == "hf" else None
    try:
        with export_folder(out, {"format": cfg.format, "source": str(checkpoint)}) as folder:
            if facts is None:
                write_weights_folder(folder, model, meta, tokenizer_file)
            else:
                assert model_type is not None, "format=hf without a model type is refused above"
                # HF_EXPORT (checked by load_checkpoint) is the Transformer family's: its model is a LanguageModel
                assert isinstance(model, LanguageModel), "a model with HF_EXPORT is a LanguageModel"
                export_model(
                    model, model_type, folder, tokenizer_file, tokenizer.roles, tokenizer.ids, meta.get("task")
                )
                write_model_card(folder, facts)
    except (OSError, SafetensorError) as error:
        if isinstance(error, OSError) or out_of_space(error):
            raise _write_failed(out, model, error) from None
        raise
    print(f"wrote {out} (from {checkpoint})")
    return {
        "out": str(out),
        "checkpoint": str(checkpoint),
        "format": cfg.format,
        **({"model_type": model_type} if facts is not None else {}),
    }


def _write_failed(out: Path, model: torch.nn.Module, error: BaseException) -> UserError:
    """The error for an export that could not be written (a full disk, ``ulimit -f``, no permission)."""
    mib = 1 << 20
    if out_of_space(error):
        weights = sum(p.numel() * p.element_size() for p in model.parameters()) / mib
        why = (
            f"the disk or a file-size limit (ulimit -f) is full; the export needs about {weights:.1f} MiB and "
            f"{shutil.disk_usage(out.parent).free / mib:.1f} MiB are free there. Run it again once there is room"
        )
    else:
        why = f"check that {out.parent} is a folder you can write, or name another out="
    return UserError(
        f"could not write the export to out={out} ({' '.join(str(error).split())}): {why}. Nothing "
        "was written at out= (a previous export there is left as it was)."
    )
