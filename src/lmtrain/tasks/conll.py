"""Tagged sentences from CoNLL column files and JSON lines, and the tagging schemes (BIO, IOB1, BIOES).

CoNLL format: one word per line with whitespace-separated columns (word first, the tag in
``data.tag_column``, default the last), a blank line between sentences, and ``-DOCSTART-`` lines
between documents; CoNLL-2003's ``word POS chunk NER`` files read as they are. JSON lines hold
``{"tokens": [...], "tags": [...]}`` per sentence; a `datasets` split a list of words and a list of
tags per row (``tokens`` and ``ner_tags``, as the Hub's CoNLL-2003).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lmtrain.data.files import open_text
from lmtrain.data.hf_datasets import HfSplit
from lmtrain.errors import UserError
from lmtrain.tasks.files import read_jsonl

SCHEMES = {"bio": ("B", "I"), "iob1": ("B", "I"), "bioes": ("B", "I", "E", "S")}


@dataclass
class TaggedSentence:
    """Words and their tags, with the line of each word in its file (for error messages)."""

    words: list[str]
    tags: list[str]
    path: str = ""
    lines: list[int] = field(default_factory=list)


def _check_fields(fields: list[str], line: str, number: int, path: Path, columns: int | None, key: str) -> None:
    if len(fields) < 2:
        raise UserError(
            f"{key}: {path}, line {number}: '{line.strip()}' has {len(fields)} column; a CoNLL "
            "line needs the word and its tag separated by white space (sentences are "
            "separated by blank lines)."
        )
    if columns is not None and len(fields) != columns:
        raise UserError(
            f"{key}: {path}, line {number}: {len(fields)} columns, but the file's first word "
            f"line has {columns}; every word line needs the same columns."
        )


def read_conll(path: Path, tag_column: int = -1, key: str = "data.train_file") -> list[TaggedSentence]:
    """Sentences of a CoNLL column file.

    Args:
        path: the file.
        tag_column: 0-based column of the tag (negative counts from the end).
        key: the config key that named the file, for error messages.
    Raises:
        UserError: a malformed line or a tag column the file does not have (file and line named).
    """
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    columns = None

    def close() -> None:
        nonlocal words, tags, lines
        if words:
            sentences.append(TaggedSentence(words, tags, str(path), lines))
        words, tags, lines = [], [], []

    with open_text(path) as f:
        for number, raw in enumerate(f, start=1):
            fields = raw.split()
            if not fields or fields[0] == "-DOCSTART-":
                close()
                continue
            if len(fields) != columns:  # the first word line sets the columns; a line that differs is refused
                _check_fields(fields, raw.rstrip("\r\n"), number, path, columns, key)
            if columns is None:
                columns = len(fields)
                if not -columns <= tag_column < columns or tag_column % columns == 0:
                    raise UserError(
                        f"data.tag_column={tag_column} does not exist in {path}: its lines have "
                        f"{columns} columns (0 is the word); use -1 for the last column."
                    )
            words.append(fields[0])
            tags.append(fields[tag_column])
            lines.append(number)
    close()
    return sentences


def read_tagged_jsonl(path: Path, tokens_field: str, tags_field: str, key: str) -> list[TaggedSentence]:
    """Sentences of a JSON lines file with a list of words and a list of tags per line."""
    sentences = []
    for number, row in read_jsonl(path, (tokens_field, tags_field), key):
        words, tags = row[tokens_field], row[tags_field]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise UserError(
                f"{key}: {path}, line {number}: '{tokens_field}' and '{tags_field}' must be lists "
                "of the same length (one tag per word)."
            )
        if words:
            sentences.append(
                TaggedSentence([str(w) for w in words], [str(t) for t in tags], str(path), [number] * len(words))
            )
    return sentences


def conll_tag_column(tag_column: int | str | None) -> int:
    """``data.tag_column`` as a CoNLL column index (None = -1, the last column).

    Raises:
        UserError: a column name (CoNLL columns have numbers, not names).
    """
    if tag_column is None:
        return -1
    if isinstance(tag_column, int) or str(tag_column).lstrip("-").isdigit():
        return int(tag_column)
    raise UserError(
        f"data.tag_column={tag_column} is a column name, but CoNLL files have numbered columns (0 is "
        "the word); give the tag's column index (-1 = the last), or read a `datasets` dataset with "
        "data.source=hf."
    )


def read_tagged_split(
    split: HfSplit, tokens_column: str, tag_column: int | str | None, key: str
) -> list[TaggedSentence]:
    """Sentences of a `datasets` split: a list of words and a list of tags per row.

    Args:
        split: the split.
        tokens_column: the column of word lists (``data.tokens_field``).
        tag_column: the column of tag lists (``data.tag_column``; None = ``ner_tags``); `ClassLabel`
            ids are read as their names, so the Hub's CoNLL-2003-style datasets work as they are.
        key: the option that named the split, for messages.
    Raises:
        UserError: a missing column, tags that are numbers without names, rows whose lists differ in length.
    """
    tag_column = "ner_tags" if tag_column is None else tag_column
    if not isinstance(tag_column, str) or tag_column.lstrip("-").isdigit():
        raise UserError(
            f"data.tag_column={tag_column} is a CoNLL column number; with data.source=hf name the "
            f"column of tags (columns of {split.where}: {', '.join(split.columns)})."
        )
    words, _ = split.named_values(tokens_column, "data.tokens_field")
    tags, named = split.named_values(tag_column, "data.tag_column")
    sentences = []
    for row, (row_words, row_tags) in enumerate(zip(words, tags), start=1):
        if not named and any(isinstance(t, int) for t in row_tags or []):
            raise UserError(
                f"data.tag_column={tag_column}: {split.where} holds tag numbers without names (the "
                "column is not a ClassLabel sequence); give a column of tag strings (B-PER, O ...) "
                "or cast it to ClassLabel names with `datasets` first."
            )
        if not isinstance(row_words, list) or not isinstance(row_tags, list) or len(row_words) != len(row_tags):
            raise UserError(
                f"{key}: {split.where}, row {row}: '{tokens_column}' and '{tag_column}' must be lists "
                "of the same length (one tag per word)."
            )
        if row_words:
            sentences.append(
                TaggedSentence(
                    [str(w) for w in row_words], [str(t) for t in row_tags], split.where, [row] * len(row_words)
                )
            )
    return sentences


def check_scheme(sentences: list[TaggedSentence], scheme: str, key: str) -> None:
    """Raise UserError at the first tag that is not ``O`` or ``<prefix>-<TYPE>`` of ``scheme``."""
    if scheme not in SCHEMES:
        raise UserError(f"data.scheme={scheme} is not supported; choose one of {', '.join(SCHEMES)}.")
    prefixes = SCHEMES[scheme]
    for sentence in sentences:
        for tag, line in zip(sentence.tags, sentence.lines):
            prefix, _, kind = tag.partition("-")
            if tag != "O" and (prefix not in prefixes or not kind):
                raise UserError(
                    f"{key}: {sentence.path}, line {line}: tag '{tag}' is not O or "
                    f"{'/'.join(p + '-TYPE' for p in prefixes)} as data.scheme={scheme} expects; "
                    "set data.scheme (bio, iob1, bioes) or data.tag_column."
                )


def iob1_to_bio(tags: list[str]) -> list[str]:
    """IOB1 (I- everywhere, B- only between adjacent entities of one type) -> BIO (B- starts every entity)."""
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def entity_types(labels: list[str]) -> list[str]:
    """The entity types of a label set (``B-PER``, ``I-PER`` -> ``PER``), sorted."""
    return sorted({label.split("-", 1)[1] for label in labels if label != "O" and "-" in label})


def allowed_transitions(labels: list[str], scheme: str) -> list[list[bool]]:
    """Which label may follow which under ``scheme``: ``allowed[i][j]`` for label i followed by label j.

    BIO (and IOB1, read as BIO): ``I-X`` only after ``B-X`` or ``I-X``. BIOES: ``I-X`` and ``E-X``
    only after ``B-X`` or ``I-X``; ``B-``, ``S-`` and ``O`` only after ``O``, ``E-`` or ``S-``.
    """

    def split(label: str) -> tuple[str, str]:
        prefix, _, kind = label.partition("-")
        return ("O", "") if label == "O" else (prefix, kind)

    def ok(before: str, after: str) -> bool:
        (p, a), (q, b) = split(before), split(after)
        inside = p in ("B", "I") and a == b
        if q in ("I", "E") if scheme == "bioes" else q == "I":
            return inside
        return scheme != "bioes" or p in ("O", "E", "S")

    return [[ok(before, after) for after in labels] for before in labels]
