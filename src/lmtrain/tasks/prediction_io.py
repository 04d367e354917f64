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
from lmtrain.files.atomic import is_link, make_dirs, write_text
from lmtrain.files.named_output import check_named_output, writing

log = logging.getLogger(__name__)
USAGE = "lmtrain predict ckpt=outputs/finetune/<run> input=sentences.txt"


def _stdin_bytes() -> bytes:
    """Standard input as bytes (text already decoded, where stdin has no byte buffer, encoded back)."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")


def read_input_lines(source: str | None, key: str = "input") -> list[str]:
    """Every line of ``source`` (a file, or - for stdin), decoded as UTF-8, blank lines included.

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
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{key}={source}, line {number}: not UTF-8 text; save the file as UTF-8.") from None
    if not any(line.strip() for line in lines):
        raise UserError(f"{key}={source} holds no text; write one input per line.")
    return lines


def read_inputs(source: str | None, key: str = "input") -> list[str]:
    """The non-blank lines of ``source`` (see :func:`read_input_lines`): the inputs."""
    return [line for line in read_input_lines(source, key) if line.strip()]


def _json_lines_problem(path: Path, head_bytes: int = 1 << 16) -> str | None:
    """Why ``path`` is not a JSON lines file of objects, judged by the whole lines in its first ``head_bytes``
    (never the whole file: it may be a large file of another kind), or None."""
    with open(path, "rb") as file:
        head = file.read(head_bytes)
    lines = head.split(b"\n")
    if len(head) == head_bytes:
        lines = lines[:-1]  # the last line may be cut short
        if not lines:  # one line longer than the head: a JSON object starts with {
            return None if head.lstrip().startswith(b"{") else "line 1 is not JSON"
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            return f"line {number} is not JSON"
        if not isinstance(value, dict):
            return f"line {number} is not a JSON object"
    return None


def check_output(output: str | None, inputs: list[str | None]) -> None:
    """Refuse an ``output=`` file that predict must not write: a link, a folder, one of the ``inputs`` files, or an
    existing file that is not a JSON lines file of objects (a file lmtrain's predictions could be): lmtrain
    replaces an earlier predictions file, never a file of another kind. Called before the model is loaded.

    Raises:
        UserError: naming ``output`` and what to do.
    """
    if not output:
        return
    path = Path(output).expanduser()
    if path.is_file() and not is_link(path):
        for source in inputs:
            named = Path(source).expanduser() if source and source != "-" else None
            if named is not None and named.is_file() and path.samefile(named):
                raise UserError(
                    f"output={output} is the input file ({source}): writing the predictions would replace what "
                    "they were made from. Write them to another file."
                )
    check_named_output(path, "output", "a JSON lines file of predictions", _json_lines_problem, "predictions.jsonl")


def write_records(
    records: list[dict[str, Any]],
    output: str | None,
    format_record: Callable[[dict], str],
    input_lines: list[str] | None = None,
) -> None:
    """JSON lines into ``output`` (replaced whole, never through a link), or one ``format_record`` line per record
    on stdout.

    With ``input_lines`` (every input line, blank ones included; one record per non-blank line), stdout keeps one
    line per input line, an empty one for a blank input, so the predictions line up with the input file.
    """
    if output:
        out = Path(output).expanduser()
        with writing(out, "output"):
            make_dirs(out.parent)
            write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        log.info("wrote %d prediction(s) to %s", len(records), out)
        return
    lines = [format_record(record) for record in records]
    if input_lines is not None:
        formatted = iter(lines)
        lines = [next(formatted) if line.strip() else "" for line in input_lines]
    for line in lines:
        sys.stdout.write(line + "\n")
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
