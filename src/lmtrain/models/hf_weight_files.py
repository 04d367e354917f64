"""The weight files of a Hugging Face folder: which they are, their tensors' shapes, their tensors.

A folder holds ``model.safetensors``, or shards listed by ``model.safetensors.index.json``, or a
legacy ``pytorch_model.bin``. None of them is trusted: the index must be a JSON object whose
``weight_map`` maps tensor names to shard files of the folder itself (no absolute path, no ``..``),
and ``pytorch_model.bin`` must hold a flat dict of named tensors, read without unpickling code.
The shapes come from the safetensors headers alone, so a config can be checked against them before
any tensor is read or any model is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from safetensors import SafetensorError, safe_open

from lmtrain.errors import UserError
from lmtrain.files.tensors import read_safetensors, read_tensor_dict, unreadable

SAFETENSORS = "model.safetensors"
INDEX = "model.safetensors.index.json"
LEGACY = "pytorch_model.bin"

Shapes = dict[str, tuple[int, ...]]


def weight_files(folder: Path) -> list[Path]:
    """The files holding the weights of the Hugging Face folder ``folder``, checked to lie inside it.

    Raises:
        UserError: there are none, or the shard index is malformed or names a file outside ``folder``.
    """
    if (folder / SAFETENSORS).is_file():
        return [folder / SAFETENSORS]
    if (folder / INDEX).is_file():
        return [folder / name for name in _shard_names(folder / INDEX)]
    if (folder / LEGACY).is_file():
        return [folder / LEGACY]
    raise UserError(
        f"{folder} has no {SAFETENSORS} (or {LEGACY}): expected a Hugging Face model folder as written "
        "by save_pretrained, with config.json and the weights."
    )


def _shard_names(index: Path) -> list[str]:
    """The shard files ``index`` names, each a relative path that stays inside the index's folder."""
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UserError(
            f"{index} is not valid JSON ({' '.join(str(error).split())[:200]}); write the model "
            "again with save_pretrained."
        ) from None
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if (
        not isinstance(weight_map, dict)
        or not weight_map
        or not all(isinstance(name, str) and isinstance(shard, str) for name, shard in weight_map.items())
    ):
        found = (
            f"a JSON {type(content).__name__}"
            if not isinstance(content, dict)
            else f"a weight_map of {type(weight_map).__name__}"
            if not isinstance(weight_map, dict)
            else "a weight_map that is empty or not all strings"
        )
        raise UserError(
            f"{index} is not a shard index: expected a JSON object whose weight_map maps each tensor "
            f"name to the name of its shard file (both strings), as save_pretrained writes; found "
            f"{found}. Write the model again with save_pretrained."
        )
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        posix, windows = PurePosixPath(shard), PureWindowsPath(shard)
        if (
            not posix.parts
            or posix.is_absolute()
            or windows.is_absolute()
            or windows.drive
            or ".." in posix.parts
            or ".." in windows.parts
        ):
            raise UserError(
                f"{index} names the shard {shard!r}, which is not a file of {index.parent}; a shard "
                "index names files inside its model folder only, and lmtrain reads no file elsewhere. "
                "Put the shards beside the index and name them relatively, as save_pretrained does."
            )
    return shards


def read_checked_weights(folder: Path, check: Callable[[Shapes, str], None]) -> dict[str, torch.Tensor]:
    """The tensors of ``folder``'s weight files, read only after ``check`` accepted their shapes.

    Args:
        folder: a Hugging Face folder (see :func:`weight_files`).
        check: called with every tensor's shape and how to name the files (see :func:`describe`); it
            raises to stop before any tensor is read. Safetensors shapes come from the headers alone;
            a ``pytorch_model.bin`` is read whole first (it has no header), without unpickling code.
    Raises:
        UserError: a file is missing, damaged, refused, or not a flat dict of named tensors.
    """
    files = weight_files(folder)
    if files[0].name == LEGACY:
        tensors = read_tensor_dict(files[0])
        check({name: tuple(tensor.shape) for name, tensor in tensors.items()}, describe(files, folder))
        return tensors
    shapes: Shapes = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as file:
                shapes.update((name, tuple(file.get_slice(name).get_shape())) for name in file.keys())  # noqa: SIM118 -- safe_open is not iterable
        except (SafetensorError, OSError) as error:
            raise unreadable(path, error) from None
    check(shapes, describe(files, folder))
    return {name: tensor for path in files for name, tensor in read_safetensors(path).items()}


def describe(files: list[Path], folder: Path) -> str:
    """How a message names the weight files (``model.safetensors``, or the index and its shard count)."""
    if len(files) == 1 and files[0].parent == folder and files[0].name in (SAFETENSORS, LEGACY):
        return files[0].name
    return f"the {len(files)} shard{'s' if len(files) > 1 else ''} of {INDEX}"
