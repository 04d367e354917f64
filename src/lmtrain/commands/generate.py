"""`lmtrain generate`: continue prompts with a causal LM, or fill mask tokens with a masked LM.

Generated text goes to stdout (streamed as tokens come, so it can be piped); logs go to stderr.
Every prompt and its result are also written to `generations.jsonl` in the run directory.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lmtrain.errors import UserError
from lmtrain.generation import Sampling, TextStream, fill_mask, generate, seeded_generator, with_mask_token
from lmtrain.models.loading import load_checkpoint
from lmtrain.run_dir import RunDir, hydra_run_dir
from lmtrain.training.precision import resolve_device

log = logging.getLogger(__name__)

GENERATIONS_FILE = "generations.jsonl"
USAGE = "lmtrain generate ckpt=outputs/pretrain/<run> prompt=\"The fire\""


def read_prompts(prompt: str | None, prompts_file: str | None) -> list[str]:
    """The prompts to run: ``prompt`` first, then each non-blank line of ``prompts_file``.

    Raises:
        UserError: no prompt at all, an empty prompt, or a missing / empty prompts file.
    """
    prompts: list[str] = []
    if prompt is not None:
        if not str(prompt).strip():
            raise UserError(f"prompt is empty; give the text to start from, e.g. `{USAGE}`.")
        prompts.append(str(prompt))
    if prompts_file:
        path = Path(prompts_file).expanduser()
        if not path.is_file():
            raise UserError(f"prompts_file={prompts_file}: no such file; give a text file with one prompt per line.")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise UserError(f"prompts_file={prompts_file} has no prompts; write one prompt per line.")
        prompts.extend(lines)
    if not prompts:
        raise UserError(f"no prompt given: add prompt=... (quote text with spaces or brackets: `{USAGE}`) "
                        "or prompts_file=<file with one prompt per line>.")
    return prompts


def _continue(cfg, model, tokenizer, prompts: list[str], out) -> list[dict[str, Any]]:
    """Causal LM: print each prompt and its continuation; return one record per prompt."""
    # Training streams are documents separated by end-of-text, so a prompt starts after one.
    start = [tokenizer.ids["bos"]] if "bos" in tokenizer.ids else []
    encoded = [start + ids for ids in tokenizer.encode_batch(prompts)]
    device = model.backbone.embeddings.token.weight.device
    settings = dict(sampling=Sampling(cfg.greedy, cfg.temperature, cfg.top_k, cfg.top_p),
                    eos_id=tokenizer.ids.get("eos"), pad_id=tokenizer.ids.get("pad", 0), use_cache=cfg.use_cache,
                    generator=seeded_generator(cfg.seed, device))
    records: list[dict[str, Any]] = []
    if cfg.stream:
        for prompt, ids in zip(prompts, encoded):
            out.write(("\n" if records else "") + prompt)
            out.flush()
            text = TextStream(tokenizer, ids)

            def show(row: int, token: int) -> None:
                out.write(text.push(token))
                out.flush()

            new = generate(model, [ids], cfg.max_new_tokens, on_token=show, **settings)[0]
            out.write(text.flush() + "\n")
            records.append(_record(prompt, ids, new, text, _limit(cfg, model, ids)))
        return records
    for first in range(0, len(prompts), cfg.batch_size):
        batch = encoded[first:first + cfg.batch_size]
        for prompt, ids, new in zip(prompts[first:], batch, generate(model, batch, cfg.max_new_tokens, **settings)):
            text = TextStream(tokenizer, ids)
            for token in new:
                text.push(token)
            out.write(("\n" if records else "") + prompt + text.text + "\n")
            records.append(_record(prompt, ids, new, text, _limit(cfg, model, ids)))
    out.flush()
    return records


def _record(prompt: str, ids: list[int], new: list[int], text: TextStream, limit: int) -> dict[str, Any]:
    """One line of generations.jsonl; ``limit`` is the most new tokens the prompt could get."""
    stopped = "length" if len(new) >= limit else "eos"
    return {"prompt": prompt, "completion": text.text, "prompt_tokens": len(ids), "new_tokens": len(new),
            "token_ids": new, "stopped": stopped}


def _limit(cfg, model, ids: list[int]) -> int:
    return min(cfg.max_new_tokens, model.spec.max_positions - len(ids))


def _fill(cfg, model, tokenizer, prompts: list[str], console: Console) -> list[dict[str, Any]]:
    """Masked LM: a table of the top candidates at every mask of every prompt."""
    mask = tokenizer.roles.get("mask", "[MASK]")
    for prompt in prompts:
        if mask not in with_mask_token(prompt, mask):
            raise UserError(f"this is a masked LM (it fills masks, it does not continue text) and the prompt "
                            f"{prompt!r} has no mask token; write {mask} where a word should be predicted, "
                            f"e.g. prompt=\"The {mask} was hot\".")
    records = []
    for prompt in prompts:
        predictions = fill_mask(model, tokenizer, prompt, cfg.candidates)
        console.print(prompt, markup=False, highlight=False)
        table = Table(show_header=True, header_style="bold")
        for name, justify in (("mask", "right"), ("rank", "right"), ("token", "left"), ("probability", "right")):
            table.add_column(name, justify=justify)
        for m, candidates in enumerate(predictions, start=1):
            for rank, c in enumerate(candidates, start=1):
                table.add_row(str(m), str(rank), c.text.strip() or repr(c.text), f"{c.prob:.4f}")
        console.print(table)
        records.append({"prompt": prompt, "masks": [[{"token": c.token, "text": c.text, "token_id": c.token_id,
                                                      "prob": c.prob} for c in cs] for cs in predictions]})
    return records


def run(cfg) -> dict[str, Any]:
    """Run `lmtrain generate` with the composed config ``cfg`` (a GenerateConfig); returns the summary."""
    started = time.perf_counter()
    if not cfg.ckpt:
        raise UserError(f"ckpt is not set: give the run directory or checkpoint to load, e.g. `{USAGE}`.")
    prompts = read_prompts(cfg.prompt, cfg.prompts_file)
    if cfg.max_new_tokens < 1 or cfg.candidates < 1 or cfg.batch_size < 1:
        raise UserError("max_new_tokens, candidates and batch_size must each be at least 1.")
    device = resolve_device(cfg.device, key="device")
    model, tokenizer, meta = load_checkpoint(cfg.ckpt, device, key="ckpt")
    run_dir = RunDir(hydra_run_dir())
    if "lm" in model.heads:
        records = _continue(cfg, model, tokenizer, prompts, sys.stdout)
    elif "mlm" in model.heads:
        records = _fill(cfg, model, tokenizer, prompts, Console())
    else:
        raise UserError(f"ckpt={cfg.ckpt} holds a model with heads {model.head_names}; generate needs a causal "
                        "LM head (lm, from model=gpt) or a masked LM head (mlm, from model=bert or roberta).")
    with open(run_dir.path / GENERATIONS_FILE, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    seconds = time.perf_counter() - started
    summary = {"command": "generate", "ckpt": str(cfg.ckpt), "model": meta.get("model_name"),
               "step": meta.get("step"), "prompts": len(records),
               "new_tokens": sum(r.get("new_tokens", 0) for r in records), "wall_seconds": round(seconds, 2)}
    run_dir.write_summary(summary)
    log.info("%d prompt(s) in %.1fs; results in %s", len(records), seconds, run_dir.path / GENERATIONS_FILE)
    return summary
