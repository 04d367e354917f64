"""Labelled texts from TSV / CSV (columns by header name or 0-based index), JSON lines, fastText files and
`datasets` splits."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtrain.config.data import ClassificationDataConfig
from lmtrain.data.files import open_text
from lmtrain.data.hf_datasets import HfSplit
from lmtrain.errors import UserError
from lmtrain.tasks.files import read_jsonl, read_lines

log = logging.getLogger(__name__)
FASTTEXT_PREFIX = "__label__"


@dataclass
class LabelledText:
    """One example: a text (and optional second text) with its label and source line."""

    text: str
    text_pair: str | None
    label: str
    line: int


def _label(value: Any, path: Path | str, line: int, key: str) -> str:
    """``value`` as a label; an empty or missing one is an error (it would become a class of its own). ``path``
    and ``line`` say where it is (a file, or a `datasets` split and its row)."""
    label = "" if value is None else str(value).strip()
    if not label:
        raise UserError(
            f"{key}: {path}, line {line}: empty label; give every example its label (or delete "
            "the line), and check data.label_column names the label column."
        )
    return label


def _rows(path: Path, fmt: str) -> list[tuple[int, list[str]]]:
    with open_text(path, newline="") as f:
        # GLUE TSVs hold bare quotes inside sentences: no CSV quoting
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(f)
        return [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]


def _column(spec: str, header: list[str] | None, width: int, key: str, path: Path) -> int:
    """Index of a column given by name (needs a header) or by 0-based index."""
    spec = str(spec)
    if spec.lstrip("-").isdigit():
        index = int(spec)
        if not -width <= index < width:
            raise UserError(f"{key}={spec}: {path} has {width} columns (0-{width - 1}); choose one of them.")
        return index % width
    if header is None or spec not in header:
        found = f"its columns are {', '.join(header)}" if header else "its first row names no column given"
        raise UserError(
            f"{key}={spec}: {path} has no column '{spec}' ({found}); give a column name from the "
            "header or a 0-based column index."
        )
    return header.index(spec)


def _has_header(
    rows: list[tuple[int, list[str]]], specs: list[str], label_spec: str, header_setting: bool | None
) -> bool:
    """The setting, else: a named column appears in the first row, or (columns by index) the first
    row's label cell is a value no other row has as its label (``label`` above 0 / 1 rows)."""
    if header_setting is not None:
        return bool(header_setting)
    first = rows[0][1]
    named = [s for s in specs if not str(s).lstrip("-").isdigit()]
    if named:
        return any(s in first for s in named)
    index = int(label_spec)
    labels = {row[index] for _, row in rows[1:] if -len(row) <= index < len(row)}
    return len(rows) > 2 and -len(first) <= index < len(first) and first[index] not in labels


def read_table(path: Path, fmt: str, cfg: ClassificationDataConfig, key: str) -> list[LabelledText]:
    """Examples of a TSV / CSV file; columns ``cfg.text_column``, ``cfg.text_pair_column``, ``cfg.label_column``.

    Raises:
        UserError: a column that does not exist, or a row with too few columns (file and line named).
    """
    rows = _rows(path, fmt)
    if not rows:
        raise UserError(f"{key}: {path} holds no rows.")
    specs = [cfg.text_column, cfg.label_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    header = rows[0][1] if _has_header(rows, specs, str(cfg.label_column), cfg.header) else None
    width = len(rows[0][1])
    text = _column(cfg.text_column, header, width, "data.text_column", path)
    pair = (
        None
        if cfg.text_pair_column is None
        else _column(cfg.text_pair_column, header, width, "data.text_pair_column", path)
    )
    label = _column(cfg.label_column, header, width, "data.label_column", path)
    needed = max(i for i in (text, pair, label) if i is not None) + 1
    examples = []
    for line, row in rows[1:] if header else rows:
        if len(row) < needed:
            raise UserError(
                f"{key}: {path}, line {line}: {len(row)} column(s), but column {needed - 1} is needed; "
                f"is the file {'tab' if fmt == 'tsv' else 'comma'}-separated (data.format=tsv|csv)?"
            )
        examples.append(
            LabelledText(
                row[text].strip(),
                row[pair].strip() if pair is not None else None,
                _label(row[label], path, line, key),
                line,
            )
        )
    return examples


def read_fasttext(path: Path, key: str) -> list[LabelledText]:
    """``__label__<name> text`` lines (gensim's Pang & Lee polarity file, fastText training files)."""
    examples = []
    for line, raw in enumerate(read_lines(path), start=1):
        if not raw.strip():
            continue
        first, _, text = raw.strip().partition(" ")
        if not first.startswith(FASTTEXT_PREFIX) or not text.strip():
            raise UserError(
                f"{key}: {path}, line {line}: expected '{FASTTEXT_PREFIX}<label> <text>' "
                "(fastText format); set data.format for other files."
            )
        examples.append(LabelledText(text.strip(), None, _label(first[len(FASTTEXT_PREFIX) :], path, line, key), line))
    return examples


def read_labelled_jsonl(path: Path, cfg: ClassificationDataConfig, key: str) -> list[LabelledText]:
    """JSON lines with the text, optional second text and label in the fields the column options name."""
    fields = (cfg.text_column, cfg.label_column) + ((cfg.text_pair_column,) if cfg.text_pair_column else ())
    return [
        LabelledText(
            str(row[cfg.text_column]),
            str(row[cfg.text_pair_column]) if cfg.text_pair_column else None,
            _label(row[cfg.label_column], path, line, key),
            line,
        )
        for line, row in read_jsonl(path, fields, key)
    ]


def read_labelled_split(split: HfSplit, cfg: ClassificationDataConfig, key: str) -> list[LabelledText]:
    """Examples of a `datasets` split: columns ``cfg.text_column``, ``cfg.text_pair_column``, ``cfg.label_column``.

    `ClassLabel` labels are read as their names (SST-2's ``negative`` / ``positive``).

    Raises:
        UserError: a missing column (the columns there are listed), an empty or unlabelled (-1) label.
    """
    texts, _ = split.named_values(str(cfg.text_column), "data.text_column")
    pairs = (
        split.named_values(str(cfg.text_pair_column), "data.text_pair_column")[0]
        if cfg.text_pair_column
        else [None] * len(texts)
    )
    labels, _ = split.named_values(str(cfg.label_column), "data.label_column")
    return [
        LabelledText(str(text), None if pair is None else str(pair), _label(label, split.where, row, key), row)
        for row, (text, pair, label) in enumerate(zip(texts, pairs, labels), start=1)
    ]
