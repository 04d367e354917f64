"""The texts of one local data file, read straight from it: the lines or blank-line paragraphs of a
text file, a field of each JSON lines object, a column of Parquet rows.

Reading needs no `datasets`: no Arrow copy in a cache, no lock files, no request to the Hub, and
nothing to prepare before the first text (a `datasets` table per file took 37 ms, minutes for ten
thousand files). Each pass reads the file again from its start, a batch of texts at a time, so
memory holds one batch whatever the file's size. Text files are cut as `datasets`' ``text`` builder
cuts them (lines at ``\\n`` after universal-newline translation, paragraphs at ``\\n\\n``), so the
documents of a file are the ones earlier versions read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmtrain.data.files import open_bytes, open_text
from lmtrain.errors import UserError

BATCH = 1000  # texts handed on at a time
_CHUNK = 1 << 20  # characters of a text file read at a time when cutting paragraphs
_JSON_HINT = 'Each line must be one JSON object such as {"%s": "..."}.'


def _batched(texts: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for text in texts:
        batch.append(text)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class FileTexts:
    """The texts of one file, read anew on each call of :meth:`batches`.

    Args:
        path: the file (compressed as its name says).
        kind: ``text``, ``jsonl`` or ``parquet``.
        text_field: the JSON field / Parquet column that holds a text.
        documents: text files: ``line`` (a text per line) or ``blank_line`` (paragraphs).
    """

    def __init__(self, path: Path, kind: str, text_field: str = "text", documents: str = "line"):
        self.path, self.kind, self.text_field, self.documents = path, kind, text_field, documents

    def batches(self) -> Iterator[list[Any]]:
        """Lists of texts in file order (a value that is not a string is passed on as it is)."""
        if self.kind == "parquet":
            yield from self._parquet()
        elif self.kind == "jsonl":
            yield from _batched(self._json_values())
        else:
            yield from _batched(self._paragraphs() if self.documents == "blank_line" else self._lines())

    def _lines(self) -> Iterator[str]:
        with open_text(self.path) as lines:
            for line in lines:
                yield line.rstrip("\n")

    def _paragraphs(self) -> Iterator[str]:
        with open_text(self.path) as text:
            rest = ""
            for chunk in iter(lambda: text.read(_CHUNK), ""):
                parts = (rest + chunk + text.readline()).split("\n\n")  # the chunk ends at a line end
                yield from (part for part in parts[:-1] if part)
                rest = parts[-1]
            if rest:
                yield rest

    def _json_values(self) -> Iterator[Any]:
        """The text field of each object (None where an object has none)."""
        found = False
        fields: set[str] = set()  # the keys of the objects read
        for number, value in self._json_objects():
            if not isinstance(value, dict):
                raise UserError(f"{self.path} line {number} is not a JSON object. {_JSON_HINT % self.text_field}")
            found = found or self.text_field in value
            fields.update(value)
            yield value.get(self.text_field)
        if fields and not found:
            raise UserError(
                f"data.text_field={self.text_field}: {self.path} has no field '{self.text_field}'; its "
                f"objects have the fields {', '.join(sorted(fields))}. Set data.text_field to the field "
                "that holds the text."
            )

    def _json_objects(self) -> Iterator[tuple[int, Any]]:
        """(line number, value) of each JSON line; a file that is one JSON array gives its items."""
        with open_text(self.path) as lines:
            first = True
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                if first and line.lstrip().startswith("["):
                    yield from self._json_array(line + lines.read(), number)
                    return
                first = False
                try:
                    yield number, json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as error:
                    raise UserError(
                        f"{self.path} line {number} is not valid JSON ({error.msg}: column {error.colno}). "
                        f"{_JSON_HINT % self.text_field}"
                    ) from None

    def _json_array(self, text: str, first_line: int) -> Iterator[tuple[int, Any]]:
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(
                f"{self.path} line {first_line + error.lineno - 1} is not valid JSON ({error.msg}: column "
                f"{error.colno}). A .json file holds "
                f'JSON lines or one array of objects such as [{{"{self.text_field}": "..."}}].'
            ) from None
        for item in items:
            yield first_line, item

    def _parquet(self) -> Iterator[list[Any]]:
        import pyarrow
        import pyarrow.parquet

        with open_bytes(self.path) as stream:
            try:
                table = pyarrow.parquet.ParquetFile(stream)
            except (pyarrow.ArrowException, OSError) as error:
                raise UserError(
                    f"{self.path} could not be read as Parquet ({type(error).__name__}: {error})."
                ) from None
            columns = table.schema_arrow.names
            if self.text_field not in columns:
                raise UserError(
                    f"data.text_field={self.text_field}: {self.path} has no column '{self.text_field}'; "
                    f"its columns are {', '.join(columns) or '(none)'}. Set data.text_field to the "
                    "column that holds the text."
                )
            for batch in table.iter_batches(batch_size=BATCH, columns=[self.text_field]):
                yield batch.column(0).to_pylist()
