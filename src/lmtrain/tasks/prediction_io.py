"""What ``lmtrain predict`` reads and writes: inputs one per line, predictions as lines or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from lmtrain.errors import UserError

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
