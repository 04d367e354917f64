"""`lmtrain generate`: continue prompts with a causal LM, or fill mask tokens with a masked LM.

Generated text goes to stdout (streamed as tokens come, so it can be piped); logs go to stderr,
before a streamed line starts or after it ends, never inside it.
Every prompt and its result are also written to `generations.jsonl` in the run directory, one
line as each result is ready. Every prompt is checked (text, length, mask token) before the first
is decoded, so a bad line late in a prompts file fails at once, naming its line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console, JustifyMethod
from rich.table import Table

from lmtrain.config import GenerateConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.errors import UserError
from lmtrain.files.atomic import open_text
from lmtrain.generation import (
    Sampling,
    TextStream,
    encode_for_mask,
    fill_mask,
    generate,
    seeded_generator,
    with_mask_token,
)
from lmtrain.kernels import use_cpu_kernels
from lmtrain.models.capabilities import Capability
from lmtrain.models.loading import load_checkpoint
from lmtrain.run_folder.layout import RunDir, hydra_run_dir
from lmtrain.training.precision import resolve_device

log = logging.getLogger(__name__)

GENERATIONS_FILE = "generations.jsonl"
USAGE = 'lmtrain generate ckpt=outputs/pretrain/<run> prompt="The fire"'
# the columns of the fill-mask table: name, justification
_MASK_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("mask", "right"),
    ("rank", "right"),
    ("token", "left"),
    ("probability", "right"),
)


@dataclass(frozen=True)
class Prompt:
    """One prompt and where it came from (``prompt`` or ``<file>, line N``), for error messages."""

    text: str
    where: str


def _file_prompts(prompts_file: str) -> list[Prompt]:
    """Each non-blank line of ``prompts_file``, taken literally, with its line number."""
    path = Path(prompts_file).expanduser()
    if not path.is_file():
        raise UserError(f"prompts_file={prompts_file}: no such file; give a text file with one prompt per line.")
    prompts = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                f"prompts_file={prompts_file}, line {number}: not UTF-8 text; save the file as UTF-8."
            ) from None
        if line.strip():
            prompts.append(Prompt(line, f"prompts_file={prompts_file}, line {number}"))
    if not prompts:
        raise UserError(f"prompts_file={prompts_file} has no prompts; write one prompt per line.")
    return prompts


def read_prompts(prompt: str | None, prompts_file: str | None) -> list[Prompt]:
    """The prompts to run: ``prompt`` first, then each non-blank line of ``prompts_file``.

    Raises:
        UserError: no prompt at all, an empty prompt, a missing / empty prompts file, or a line of
            it that is not UTF-8 (its number named).
    """
    prompts: list[Prompt] = []
    if prompt is not None:
        if not str(prompt).strip():
            raise UserError(f"prompt is empty; give the text to start from, e.g. `{USAGE}`.")
        prompts.append(Prompt(str(prompt), "prompt"))
    if prompts_file:
        prompts.extend(_file_prompts(prompts_file))
    if not prompts:
        raise UserError(
            f"no prompt given: add prompt=... (quote text with spaces or brackets: `{USAGE}`) "
            "or prompts_file=<file with one prompt per line>."
        )
    return prompts


def _check_lengths(prompts: list[Prompt], encoded: list[list[int]], max_positions: int | None, causal: bool) -> None:
    """Every prompt fits the model (with room for one new token when continuing), checked before any decoding;
    ``max_positions`` None: a model without a position table, no limit."""
    for prompt, ids in zip(prompts, encoded):
        if not ids:
            raise UserError(f"{prompt.where}: the prompt gives no tokens; write some text.")
        if max_positions is not None and len(ids) > (max_positions - 1 if causal else max_positions):
            raise UserError(
                f"{prompt.where}: the prompt has {len(ids)} tokens but the model covers "
                f"{max_positions} positions (model.max_positions); shorten the prompt."
            )


class RecordWriter:
    """generations.jsonl, one line per prompt, written and flushed as each result is ready.

    A failure or an interruption after some prompts keeps their results.
    """

    def __init__(self, path: Path):
        self.path, self.count, self.new_tokens = path, 0, 0
        self._file = open_text(path, append=False)  # never through a link

    def add(self, record: dict[str, Any]) -> None:
        """Append ``record`` and flush it to disk."""
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.count += 1
        self.new_tokens += record.get("new_tokens", 0)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


@contextmanager
def logs_held_back() -> Iterator[None]:
    """Hold every log record and warning raised inside the block, and emit them after it.

    stdout and stderr share one terminal: a log line written while a continuation streams would
    land inside the text (``The fire[... INFO] - ...``). Held back, it follows the finished line.
    """
    held: list[tuple[logging.Handler, logging.LogRecord]] = []
    handlers = [h for logger in (logging.getLogger(), logging.getLogger("lmtrain")) for h in logger.handlers]

    def hold(handler: logging.Handler) -> Callable[[logging.LogRecord], bool]:
        def keep(record: logging.LogRecord) -> bool:  # a filter that keeps the record for later
            held.append((handler, record))
            return False

        return keep

    filters = [(handler, hold(handler)) for handler in handlers]
    for handler, keep in filters:
        handler.addFilter(keep)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield
    finally:
        for handler, keep in filters:
            handler.removeFilter(keep)
        for handler, record in held:
            handler.handle(record)
        for warning in caught:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _continue(cfg: GenerateConfig, model, tokenizer, prompts: list[Prompt], out, records: RecordWriter) -> None:
    """Causal LM: print each prompt and its continuation; record each as it is done."""
    # Training streams are documents separated by end-of-text, so a prompt starts after one.
    start = [tokenizer.ids["bos"]] if "bos" in tokenizer.ids else []
    texts = [p.text for p in prompts]
    encoded = [start + ids for ids in tokenizer.encode_batch(texts)]
    _check_lengths(prompts, encoded, model.spec.max_positions, causal=True)
    device = next(model.parameters()).device
    settings = dict(
        sampling=Sampling(cfg.greedy, cfg.temperature, cfg.top_k, cfg.top_p),
        eos_id=tokenizer.ids.get("eos"),
        pad_id=tokenizer.ids.get("pad", 0),
        use_cache=cfg.use_cache,
        generator=seeded_generator(cfg.seed, device),
    )
    if cfg.stream:
        for prompt, ids in zip(texts, encoded):
            text = TextStream(tokenizer, ids)

            def show(row: int, token: int, text: TextStream = text) -> None:  # this prompt's stream
                out.write(text.push(token))
                out.flush()

            with logs_held_back():  # a log line never lands inside the streamed text
                out.write(("\n" if records.count else "") + prompt)
                out.flush()
                new = generate(model, [ids], cfg.max_new_tokens, on_token=show, **settings)[0]
                out.write(text.flush() + "\n")
                out.flush()
            records.add(_record(prompt, ids, new, text, _limit(cfg, model, ids)))
        return
    for first in range(0, len(texts), cfg.batch_size):
        batch = encoded[first : first + cfg.batch_size]
        for prompt, ids, new in zip(texts[first:], batch, generate(model, batch, cfg.max_new_tokens, **settings)):
            text = TextStream(tokenizer, ids)
            for token in new:
                text.push(token)
            out.write(("\n" if records.count else "") + prompt + text.text + "\n")
            records.add(_record(prompt, ids, new, text, _limit(cfg, model, ids)))
        out.flush()


def _record(prompt: str, ids: list[int], new: list[int], text: TextStream, limit: int) -> dict[str, Any]:
    """One line of generations.jsonl; ``limit`` is the most new tokens the prompt could get."""
    stopped = "length" if len(new) >= limit else "eos"
    return {
        "prompt": prompt,
        "completion": text.text,
        "prompt_tokens": len(ids),
        "new_tokens": len(new),
        "token_ids": new,
        "stopped": stopped,
    }


def _limit(cfg: GenerateConfig, model, ids: list[int]) -> int:
    limit = model.spec.max_positions
    return cfg.max_new_tokens if limit is None else min(cfg.max_new_tokens, limit - len(ids))


def _fill(
    cfg: GenerateConfig, model, tokenizer, prompts: list[Prompt], console: Console, records: RecordWriter
) -> None:
    """Masked LM: a table of the top candidates at every mask of every prompt."""
    mask = tokenizer.roles.get("mask", "[MASK]")
    mask_id = tokenizer.id("mask")
    for prompt in prompts:
        ids = encode_for_mask(tokenizer, with_mask_token(prompt.text, mask), mask_id)
        if mask_id not in ids:
            raise UserError(
                f"{prompt.where}: this is a masked LM (it fills masks, it does not continue text) and "
                f"the prompt {prompt.text!r} has no mask token; write {mask} where a word should be "
                f'predicted, e.g. prompt="The {mask} was hot".'
            )
        _check_lengths([prompt], [ids], model.spec.max_positions, causal=False)
    for prompt in prompts:
        predictions = fill_mask(model, tokenizer, prompt.text, cfg.candidates)
        console.print(prompt.text, markup=False, highlight=False)
        table = Table(show_header=True, header_style="bold")
        for name, justify in _MASK_COLUMNS:
            table.add_column(name, justify=justify)
        for m, candidates in enumerate(predictions, start=1):
            for rank, c in enumerate(candidates, start=1):
                table.add_row(str(m), str(rank), c.text.strip() or repr(c.text), f"{c.prob:.4f}")
        console.print(table)
        records.add(
            {
                "prompt": prompt.text,
                "masks": [
                    [{"token": c.token, "text": c.text, "token_id": c.token_id, "prob": c.prob} for c in cs]
                    for cs in predictions
                ],
            }
        )


def run(composed: DictConfig) -> dict[str, Any]:
    """Run `lmtrain generate` with the composed config ``composed`` (a GenerateConfig); returns the summary."""
    cfg: GenerateConfig = config_objects(composed, "generate")
    started = time.perf_counter()
    if not cfg.ckpt:
        raise UserError(f"ckpt is not set: give the run directory or checkpoint to load, e.g. `{USAGE}`.")
    prompts = read_prompts(cfg.prompt, cfg.prompts_file)
    device = resolve_device(cfg.device, key="device")
    model, tokenizer, meta = load_checkpoint(
        cfg.ckpt, device, key="ckpt", needs=(Capability.CAUSAL_LM, Capability.MASKED_LM)
    )
    run_dir = RunDir(hydra_run_dir())
    if "lm" not in model.heads and "mlm" not in model.heads:
        raise UserError(
            f"ckpt={cfg.ckpt} holds a model with heads {model.head_names}; generate needs a causal "
            "LM head (lm, from model=gpt) or a masked LM head (mlm, from model=bert or roberta)."
        )
    if device.type == "cpu":
        use_cpu_kernels()  # chosen (and logged) now, not on the first decoding step amid the text
    records = RecordWriter(run_dir.path / GENERATIONS_FILE)
    try:
        if "lm" in model.heads:
            _continue(cfg, model, tokenizer, prompts, sys.stdout, records)
        else:
            _fill(cfg, model, tokenizer, prompts, Console(), records)
    finally:
        records.close()
    seconds = time.perf_counter() - started
    summary = {
        "command": "generate",
        "ckpt": str(cfg.ckpt),
        "model": meta.get("model_name"),
        "step": meta.get("step"),
        "prompts": records.count,
        "new_tokens": records.new_tokens,
        "wall_seconds": round(seconds, 2),
    }
    run_dir.write_summary(summary)
    log.info("%d prompt(s) in %.1fs; results in %s", records.count, seconds, records.path)
    return summary
