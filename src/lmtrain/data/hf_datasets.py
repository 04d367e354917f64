"""Datasets where `datasets` keeps them: a Hub id (from the local cache, downloaded when online), a
dataset folder (parquet / json / csv / arrow files, as ``datasets.load_dataset(folder)`` reads it)
or a ``save_to_disk`` folder (``datasets.load_from_disk``).

Hub ids resolve through the usual Hugging Face cache (``HF_HOME``, ``HF_DATASETS_CACHE``) and
offline switches (``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE``). Every split read here carries an
identity (path, configuration, split and the dataset's fingerprint, which `datasets` derives from
the data files' content or revision), so tokenized caches built from it change when it changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtrain.data.cache_room import cache_full, no_room
from lmtrain.data.saved_datasets import check_saved_rows, is_saved, saved_splits
from lmtrain.errors import UserError


def quiet_datasets():
    """The `datasets` module with its progress bars and info logging off (lmtrain logs what it reads)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _looks_like_path(path: str) -> bool:
    """A local path rather than a Hub id (``name`` or ``owner/name``)."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1 or os.sep != "/" and os.sep in path


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


@dataclass
class HfSplit:
    """One split of a dataset: its rows (a `datasets` Dataset or IterableDataset), where it came from
    (for messages: ``path[split]``) and its identity (a cache key part)."""

    rows: Any
    where: str
    identity: list[str]

    @property
    def columns(self) -> list[str]:
        """The column names (read from the first row when a stream does not declare them)."""
        names = self.rows.column_names
        if names is None:
            first: dict[str, Any] = next(iter(self.rows.take(1)), {})
            names = list(first)
        return list(names)

    def column(self, name: str, key: str) -> None:
        """Raise UserError unless the split has column ``name`` (``key`` is the option that named it)."""
        columns = self.columns
        if name not in columns:
            raise UserError(
                f"{key}={name}: {self.where} has no column '{name}'; its columns are "
                f"{', '.join(columns) or '(none)'}. Set {key} to the column that holds it."
            )

    def feature(self, name: str) -> Any:
        """The `datasets` feature type of column ``name`` (None when the stream declares none)."""
        features = self.rows.features
        return features.get(name) if features is not None else None

    def named_values(self, name: str, key: str) -> tuple[list[Any], bool]:
        """The values of column ``name`` with `ClassLabel` ids read as their names (also within lists).

        Returns:
            (one value per row, whether the column held ClassLabel names). An id of -1 (unlabelled
            rows, as in GLUE's test splits) reads as None.
        """
        self.column(name, key)
        values = list(self.rows[name])
        feature = self.feature(name)
        label = feature if hasattr(feature, "int2str") else getattr(feature, "feature", None)
        name_of = getattr(label, "int2str", None)
        if name_of is None:
            return values, False

        def named(value: Any) -> Any:
            if isinstance(value, list):
                return [named(v) for v in value]
            return None if value is None or value < 0 else name_of(int(value))

        return [named(v) for v in values], True


class HfDataset:
    """The dataset ``data.path`` (with configuration ``data.config_name``), opened lazily per split.

    Args:
        path: a Hub id, a dataset folder or a ``save_to_disk`` folder (None or empty: refused, unset).
        config_name: the dataset's configuration (subset), or None for its default.
        streaming: read the rows as they are iterated instead of preparing an Arrow copy in the
            cache (Hub ids and dataset folders; a ``save_to_disk`` folder is memory-mapped anyway).
        key: the option that named ``path``, for messages.
    """

    def __init__(
        self, path: str | None, config_name: str | None = None, streaming: bool = False, key: str = "data.path"
    ):
        if not path:
            raise UserError(
                f"{key} is not set: give a Hugging Face dataset id (e.g. {key}=Salesforce/wikitext "
                "data.config_name=wikitext-2-raw-v1), a dataset folder of parquet / json / csv "
                "files, or a folder written by save_to_disk."
            )
        self.path, self.config_name, self.streaming, self.key = path, config_name, streaming, key
        local = Path(path).expanduser()
        self.local = local if local.is_dir() else None
        if local.is_file():
            raise UserError(
                f"{key}={path} is a file; give the dataset's folder, or read files with data=text "
                f"data.train_files=[{path}] (pretraining) or data.train_file={path} (fine-tuning)."
            )
        if self.local is None and _looks_like_path(path):
            raise UserError(
                f"{key}={path}: no such folder (relative paths are relative to the directory you run "
                f"lmtrain from: {Path.cwd()}); give a dataset folder or a Hub id such as owner/name."
            )
        if self.local is not None and (self.local / f"{self.local.name}.py").is_file():
            raise _script_refused(f"{key}={path}: the folder holds a dataset loading script, {self.local.name}.py,")
        self.saved = self.local is not None and is_saved(self.local)
        self._builder = None

    def split(self, split: str, key: str) -> HfSplit:
        """The rows of ``split`` (``key`` is the option that named it), with their identity.

        Raises:
            UserError: a split the dataset does not have (the ones it has are listed), an offline
                dataset that is not in the cache, a dataset that cannot be read.
        """
        where = f"{self.key}={self.path}" + (f" (data.config_name={self.config_name})" if self.config_name else "")
        if self.saved:
            rows = self._saved_split(split, key, where)
            fingerprint = rows._fingerprint
        else:
            builder = self._load_builder(where)
            rows = self._built_split(builder, split, key, where)
            fingerprint = builder.hash
        identity = [self.path, str(self.config_name), split, str(fingerprint)]
        return HfSplit(rows, f"{self.path}[{split}]", identity)

    def _saved_split(self, split: str, key: str, where: str):
        assert self.local is not None, "a save_to_disk dataset is a local folder"
        splits = saved_splits(self.local, where)
        if split not in splits:
            raise _missing_split(split, key, where, list(splits))
        check_saved_rows(splits[split], split, key, where)
        try:
            return quiet_datasets().load_from_disk(str(splits[split]))
        except Exception as error:
            raise UserError(f"{where}: the save_to_disk folder could not be read ({_first_line(error)}).") from None

    def _load_builder(self, where: str):
        """The `datasets` builder of the dataset (resolved once: local files, the cache, or the Hub)."""
        if self._builder is not None:
            return self._builder
        datasets = quiet_datasets()
        try:
            self._builder = datasets.load_dataset_builder(str(self.local or self.path), self.config_name)
        except RuntimeError as error:
            if "scripts are no longer supported" in str(error):  # datasets >= 4 refuses them too
                raise _script_refused(f"{where}: the dataset is a loading script,") from None
            raise UserError(f"{where} could not be read ({_first_line(error)}).") from None
        except ValueError as error:
            if "BuilderConfig" in str(error):
                raise UserError(
                    f"data.config_name={self.config_name}: {where} has no such configuration ({_first_line(error)})."
                ) from None
            raise UserError(f"{where} could not be read ({_first_line(error)}).") from None
        except (ConnectionError, FileNotFoundError) as error:
            raise self._not_found(error, where) from None
        return self._builder

    def _not_found(self, error: Exception, where: str) -> UserError:
        """The error for a dataset that is neither local, nor cached, nor (online) on the Hub."""
        datasets = quiet_datasets()
        if self.local is not None:
            return UserError(
                f"{where}: the folder holds no data files `datasets` can read (parquet, json, csv, "
                f"txt, arrow) and is not a save_to_disk folder ({_first_line(error)})."
            )
        if datasets.config.HF_HUB_OFFLINE:
            return UserError(
                f"{where}: offline mode is on (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) and the dataset "
                f"{self.path} is not in the cache folder {datasets.config.HF_DATASETS_CACHE}. Load it "
                "once while online (unset the offline switch), point HF_HOME / HF_DATASETS_CACHE at "
                "the cache that holds it, or give a local dataset folder."
            )
        return UserError(
            f"{where}: the dataset {self.path} was not found on the Hugging Face Hub nor in the cache "
            f"folder {datasets.config.HF_DATASETS_CACHE} ({_first_line(error)}). Check the id "
            "(owner/name), log in for a private or gated dataset (`hf auth login`), or give a "
            "local folder."
        )

    def _built_split(self, builder, split: str, key: str, where: str):
        splits = _available_splits(builder)
        if splits is not None and split not in splits:
            raise _missing_split(split, key, where, splits)
        try:
            if self.streaming:
                return builder.as_streaming_dataset(split=split)
            builder.download_and_prepare()
            return builder.as_dataset(split=split)
        except (ConnectionError, FileNotFoundError) as error:
            raise self._not_found(error, where) from None
        except Exception as error:  # datasets reports unreadable files in many exception types
            full = no_room(error)
            if full:  # datasets removes its unfinished copy
                cache = Path(quiet_datasets().config.HF_DATASETS_CACHE)
                raise cache_full(
                    f"the Arrow copy of {self.key}={self.path}", cache, full, "HF_DATASETS_CACHE"
                ) from None
            raise UserError(f"{where}: split '{split}' could not be read ({_first_line(error)}).") from None


def _script_refused(what: str) -> UserError:
    return UserError(
        f"{what} and lmtrain never runs the code of a dataset (nor does `datasets` since version 4). "
        "Give a folder of data files (parquet, json, csv, txt, arrow) or a save_to_disk folder instead: "
        "if you trust the script, run it yourself once where it may run, save its rows with "
        "save_to_disk or to_parquet, and point data.path at that folder."
    )


def _missing_split(split: str, key: str, where: str, splits: list[str]) -> UserError:
    hold_out = (
        " (or data.eval_split=null to hold out a share of the training data)" if key.endswith("eval_split") else ""
    )
    return UserError(
        f"{key}={split}: {where} has no split '{split}'; its splits are {', '.join(splits)}. "
        f"Choose one of them{hold_out}."
    )


def _available_splits(builder) -> list[str] | None:
    """The split names a builder knows before preparing (its data files, or a cached dataset's info)."""
    if builder.config.data_files:
        return list(builder.config.data_files)
    if builder.info.splits:
        return list(builder.info.splits)
    return None


def text_rows(rows: Any, text_field: str, where: str, key: str = "data.text_field") -> Any:
    """``rows`` (a `datasets` table or stream) reduced to one column named ``text``, from ``text_field``.

    Raises:
        UserError: ``rows`` has no column ``text_field`` (the columns there are listed).
    """
    HfSplit(rows, where, []).column(text_field, key)
    rows = rows.select_columns([text_field])
    return rows.rename_column(text_field, "text") if text_field != "text" else rows
