"""Where a task's data files are: the user's, or the bundled ones (lmtrain resources, gensim test data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

from lmtrain.config.data import TaskDataConfig
from lmtrain.data.corpus import bundled_file, held_out_mask
from lmtrain.data.files import check_data_file, data_suffix, expand_paths, is_parquet, open_bytes, open_text
from lmtrain.data.hf_datasets import HfDataset, HfSplit
from lmtrain.errors import UserError

T = TypeVar("T")
FORMATS = ("auto", "conll", "jsonl", "tsv", "csv", "fasttext")
_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".tsv": "tsv",
    ".csv": "csv",
    ".cor": "fasttext",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
}


def bundled_path(name: str) -> Path:
    """Path of a bundled data file: ``gensim:<name>`` (gensim's test data) or lmtrain's ``resources/<name>``."""
    if name.startswith("gensim:"):
        return bundled_file(name[len("gensim:") :])
    path = Path(str(resources.files("lmtrain") / "resources" / name))
    if not path.is_file():
        raise UserError(
            f"bundled data file {name} is missing from this installation ({path}); "
            "reinstall lmtrain or give data.train_file=... ."
        )
    return path


def data_files(data_cfg: TaskDataConfig) -> tuple[list[Path], list[Path] | None]:
    """The (train, eval) files of ``data_cfg``, checked to be readable UTF-8 text (also compressed).

    ``data.train_file`` / ``data.eval_file`` may be a file, a glob (its matches, sorted) or a folder
    (its data files, sorted). Without ``data.train_file`` the task's bundled files are used; a user's
    training file without ``data.eval_file`` gets None (a share of it is held out instead).
    """
    if data_cfg.train_file:
        train = expand_paths([data_cfg.train_file], "data.train_file")
        for path in train:
            _check_task_file(path, "data.train_file")
        eval_files = expand_paths([data_cfg.eval_file], "data.eval_file") if data_cfg.eval_file else None
    else:
        if not data_cfg.bundled_train:
            raise UserError(
                "data.train_file is not set and this task has no bundled data; give data.train_file=<your file>."
            )
        train = [bundled_path(data_cfg.bundled_train)]
        eval_files = (
            expand_paths([data_cfg.eval_file], "data.eval_file")
            if data_cfg.eval_file
            else [bundled_path(data_cfg.bundled_eval)]
            if data_cfg.bundled_eval
            else None
        )
    for path in eval_files or []:
        _check_task_file(path, "data.eval_file")
    return train, eval_files


def _check_task_file(path: Path, key: str) -> None:
    """Raise UserError unless ``path`` is a readable text file (Parquet goes through data.source=hf)."""
    if is_parquet(path):
        raise UserError(
            f"{key}: {path} is a Parquet file; fine-tuning reads Parquet as a `datasets` dataset: "
            f"data.source=hf data.path=<the folder that holds it>."
        )
    check_data_file(path, key)


def hf_splits(data_cfg: TaskDataConfig) -> tuple[HfSplit, HfSplit | None]:
    """The (train, eval) splits of the `datasets` dataset ``data.path`` (eval None: hold out a share)."""
    dataset = HfDataset(data_cfg.path, data_cfg.config_name)
    train = dataset.split(data_cfg.train_split, "data.train_split")
    return train, dataset.split(data_cfg.eval_split, "data.eval_split") if data_cfg.eval_split else None


def file_format(path: Path, fmt: str, default: str) -> str:
    """The format of ``path``: ``fmt`` unless auto, else by extension, else ``default``."""
    if fmt not in FORMATS:
        raise UserError(f"data.format={fmt} is not supported; choose one of {', '.join(FORMATS)}.")
    if fmt != "auto":
        return fmt
    return _BY_SUFFIX.get(data_suffix(path), default)


def hold_out(examples: list[T], fraction: float, seed: int, what: str) -> tuple[list[T], list[T]]:
    """Split ``examples`` into (train, held-out): ``fraction`` of them, at least one, chosen by ``seed``."""
    if len(examples) < 2:
        raise UserError(
            f"{what} has {len(examples)} example(s); at least 2 are needed to hold one out "
            "for evaluation. Add data or give data.eval_file."
        )
    if not 0 < fraction < 1:
        raise UserError(f"data.eval_fraction={fraction} must be between 0 and 1 (exclusive).")
    held = held_out_mask(len(examples), fraction, seed)  # the pretraining corpus's split rule
    return [e for e, h in zip(examples, held) if not h], [e for e, h in zip(examples, held) if h]


def read_lines(path: Path) -> list[str]:
    """Lines of a text file: UTF-8, or Windows-1252 for older bundled files (gensim's Pang & Lee set).

    User files are checked to be UTF-8 before they get here, so the fallback only serves bundled data.
    """
    with open_bytes(path) as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.splitlines()


def read_jsonl(path: Path, fields: tuple[str, ...], key: str) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON lines file, each having ``fields``.

    Raises:
        UserError: a line that is not a JSON object, or lacks one of ``fields`` (file and line named).
    """
    import json

    rows = []
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{key}: {path}, line {number}: not valid JSON ({error.msg}).") from None
            if not isinstance(row, dict) or any(name not in row for name in fields):
                have = ", ".join(row) if isinstance(row, dict) else type(row).__name__
                raise UserError(
                    f"{key}: {path}, line {number}: expected an object with fields "
                    f"{', '.join(fields)} (found: {have}); set the data.*_field options "
                    "to the names your file uses."
                )
            rows.append((number, row))
    return rows
