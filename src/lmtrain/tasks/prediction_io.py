"""What ``lmtrain predict`` reads and writes: inputs one per line, predictions as lines or JSON lines."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmtrain.config.checks import ConfigRangeError, range_error
from lmtrain.errors import UserError

log = logging.getLogger(__name__)
USAGE = "lmtrain predict ckpt=outputs/finetune/<run> input=sentences.txt"


def _stdin_bytes() -> bytes:
    """Standard input as bytes (text already decoded, where stdin has no byte buffer, encoded back)."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")


def read_inputs(source: str | None, key: str = "input") -> list[str]:
    """Non-blank lines of ``source`` (a file, or - for stdin), decoded as UTF-8.

    Args:
        source: the file, or ``-``.
        key: the option that named it, for messages.
    Raises:
        UserError: no source, no such file, no text, or a line that is not UTF-8 (its number named).
    """
    if not source:
        raise UserError(f"{key} is not set: give a text file with one input per line, or - for stdin (`{USAGE}`).")
    if source == "-":
        data = _stdin_bytes()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise UserError(f"{key}={source}: no such file; give a text file with one input per line, or - for stdin.")
        data = path.read_bytes()
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{key}={source}, line {number}: not UTF-8 text; save the file as UTF-8.") from None
        if line.strip():
            lines.append(line)
    if not lines:
        raise UserError(f"{key}={source} holds no text; write one input per line.")
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


def typed_predict_options(schema: type, values: Any, task_name: str) -> Any:
    """``values`` (the ``task.*`` keys of `lmtrain predict`, a mapping) as the task's predict ``schema``.

    Raises:
        UserError: a key ``schema`` lacks (the run's task would ignore it), a value of the wrong type or out of range.
    """
    from omegaconf import OmegaConf

    values = dict(values or {})
    known = [f.name for f in dataclasses.fields(schema)]
    for key, value in values.items():
        if key not in known:
            reads = ", ".join(f"task.{k}" for k in known) or "no task.* key"
            raise UserError(
                f"invalid configuration for `lmtrain predict`: task.{key}={value} is not read by the run's "
                f"task ({task_name}; its predict keys are typed by {schema.__name__}), so nothing would "
                f"read it. That task reads {reads}; drop the key."
            )
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except ConfigRangeError as error:
        error.field = f"task.{error.field}"
        raise range_error(error, "predict") from None
    except Exception as error:  # OmegaConf's validation errors: a value of the wrong type
        key = getattr(error, "key", "?")
        raise UserError(
            f"invalid configuration for `lmtrain predict`: task.{key}: {str(error).splitlines()[0]} "
            f"(the run's task {task_name} types it by {schema.__name__})."
        ) from None
