"""`lmtrain predict`: tag, classify or complete raw text with a fine-tuned run, one input per line.

Plain lines go to stdout (one per input, in input order) unless ``output=`` names a JSON lines
file; logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from lmtrain.errors import UserError
from lmtrain.models.loading import load_checkpoint, locate_model, read_meta
from lmtrain.tasks import task_from_meta
from lmtrain.training.precision import resolve_device

log = logging.getLogger(__name__)
USAGE = "lmtrain predict ckpt=outputs/finetune/<run> input=sentences.txt"


def read_inputs(source: str | None) -> list[str]:
    """Non-blank lines of ``source`` (a file, or - for stdin)."""
    if not source:
        raise UserError(f"input is not set: give a text file with one input per line, or - for stdin (`{USAGE}`).")
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise UserError(f"input={source}: no such file; give a text file with one input per line, or - for stdin.")
        text = path.read_text(encoding="utf-8")
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"input={source} holds no text; write one input per line.")
    return lines


def finetuned_checkpoint(path: str | None):
    """The checkpoint ``ckpt`` names: a run's ``checkpoints/best`` (else ``last``), or a checkpoint directory."""
    if not path:
        raise UserError(f"ckpt is not set: give a fine-tuned run directory or checkpoint (`{USAGE}`).")
    return locate_model(path, key="ckpt", best=True)


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict for every line of ``cfg.input``; returns the records."""
    checkpoint = finetuned_checkpoint(cfg.ckpt)
    if read_meta(checkpoint).get("family") == "albef":  # images and captions, not lines of text
        from lmtrain.tasks.retrieval_predict import predict_retrieval

        return predict_retrieval(cfg, checkpoint)
    device = resolve_device(cfg.device, key="device")
    model, tokenizer, meta = load_checkpoint(checkpoint, device, key="ckpt", families=("transformer", "elmo"))
    info = meta.get("task")
    if not info:
        raise UserError(f"ckpt={cfg.ckpt} is a pretrained model, not a fine-tuned one: fine-tune it first "
                        "(`lmtrain finetune task=ner init=...`), or use `lmtrain generate` on pretrained models.")
    task = task_from_meta(info, scheme=info.get("scheme", "bio"), max_seq_len=info.get("max_seq_len", 128))
    lines = read_inputs(cfg.input)
    log.info("predict: %d input(s) with %s (task=%s)", len(lines), checkpoint, info["name"])
    records = task.predict(model, tokenizer, lines, cfg.batch_size, device, pair=info.get("pair", False),
                           max_new_tokens=cfg.max_new_tokens)
    write_records(records, cfg.output, task.format)
    return records


def write_records(records: list[dict[str, Any]], output: str | None, format_record: Callable[[dict], str]) -> None:
    """JSON lines into ``output``, or one ``format_record`` line per record on stdout."""
    if output:
        out = Path(output).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        log.info("wrote %d prediction(s) to %s", len(records), out)
        return
    for record in records:
        sys.stdout.write(format_record(record) + "\n")
    sys.stdout.flush()
