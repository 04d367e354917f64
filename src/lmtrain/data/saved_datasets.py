"""Folders written by `datasets`' ``save_to_disk``: which splits they hold, and one split read by itself.

A saved Dataset is one folder (``state.json``, ``dataset_info.json`` and its Arrow files), read as
the training split; a saved DatasetDict lists its splits in ``dataset_dict.json``, each a saved
Dataset in the sub-folder of its name. Reading only the split asked for lets an empty or damaged
split elsewhere in the folder be, and an empty split (saved with no Arrow file at all, which
`datasets` then fails to read with an IndexError) is named as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError

_SAVED_DATASET = ("state.json", "dataset_info.json")
_SAVED_DICT = "dataset_dict.json"


def is_saved(folder: Path) -> bool:
    """Whether ``folder`` was written by ``save_to_disk`` (a Dataset or a DatasetDict)."""
    return all((folder / name).is_file() for name in _SAVED_DATASET) or (folder / _SAVED_DICT).is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def saved_splits(folder: Path, where: str) -> dict[str, Path]:
    """Split name -> the folder of that split's saved Dataset (``where`` names the dataset in messages)."""
    if not (folder / _SAVED_DICT).is_file():
        return {"train": folder}  # one saved Dataset: its rows are the training split
    listed = _read_json(folder / _SAVED_DICT)
    names = listed.get("splits") if isinstance(listed, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UserError(
            f"{where}: {folder / _SAVED_DICT} is not the file save_to_disk writes (a JSON object with "
            'a list of split names under "splits"); save the dataset again.'
        )
    return {name: folder / name for name in names if Path(name).name == name and name not in (".", "..")}


def check_saved_rows(folder: Path, split: str, key: str, where: str) -> None:
    """Raise UserError if split ``split``, saved in ``folder``, was saved empty (``key`` is the option that
    chose it)."""
    state = folder / "state.json"
    recorded = _read_json(state)
    if isinstance(recorded, dict) and recorded.get("_data_files") == []:
        raise UserError(
            f"{key}={split}: {where} holds no rows in split '{split}' (its {state} lists no data files: "
            "an empty dataset was saved). Save the dataset again with its rows, or choose a split that "
            "has some."
        )
