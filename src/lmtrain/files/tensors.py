"""Read tensor files a user hands over (safetensors, ``torch.save`` zips) without trusting them.

Nothing here unpickles: ``.pt`` / ``.bin`` files are read with ``weights_only=True``, which
refuses any object but tensors and plain containers. Every failure becomes a UserError naming the
file and what to do, never a traceback from the reader.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model
from torch import nn

from lmtrain.errors import UserError


def unreadable(path: Path, error: BaseException) -> UserError:
    """The error for a file a reader choked on: truncated or corrupt, and what to do."""
    reason = " ".join(str(error).split())[:200]
    said = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
    return UserError(
        f"{path} is unreadable ({said}): the file is truncated or corrupt, "
        "e.g. by a copy that did not finish or a full disk. Use another checkpoint (an older "
        "checkpoints/step-N) or write the file again."
    )


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (None if its header and size agree)."""
    try:
        with safe_open(str(path), framework="pt"):
            return None
    except (SafetensorError, OSError) as error:
        return " ".join(str(error).split())


def torch_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete ``torch.save`` archive (None if its zip directory reads)."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
        return None
    except (zipfile.BadZipFile, OSError) as error:
        return " ".join(str(error).split())


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; UserError naming the file if it is missing or damaged."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise unreadable(path, error) from None


def load_safetensors_into(model: nn.Module, path: Path) -> tuple[list[str], list[str]]:
    """Load a safetensors file into ``model`` (not strict); returns the missing and unexpected names.

    Raises:
        UserError: the file is damaged, or a tensor's shape differs from the model's.
    """
    try:
        return load_model(model, str(path), strict=False)
    except (SafetensorError, OSError) as error:
        raise unreadable(path, error) from None
    except RuntimeError as error:  # shape mismatches: a checkpoint of another model size
        reason = " ".join(str(error).split())[:300]
        raise UserError(
            f"{path} does not fit this model ({reason}); it was written by a model of another "
            "configuration (size, vocabulary or heads). Use a checkpoint of this model, or the "
            "settings it was trained with."
        ) from None


def read_torch_tensors(path: Path) -> Any:
    """A ``torch.save`` file of tensors and plain containers, refusing anything that needs unpickling code.

    Raises:
        UserError: the file holds other objects (it could run code if unpickled), or is damaged.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path} is not a plain tensor checkpoint; refusing to unpickle it. It holds Python objects "
            "other than tensors, and loading those could run arbitrary code. Convert it to "
            "safetensors where it came from, or use another checkpoint."
        ) from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise unreadable(path, error) from None


def read_tensor_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save`` file holding a flat dict of named tensors (a state dict), read as :func:`read_torch_tensors`.

    Raises:
        UserError: the file holds anything else (a list, nested dicts, numbers), is damaged or needs unpickling.
    """
    content = read_torch_tensors(path)
    if isinstance(content, dict) and all(
        isinstance(name, str) and isinstance(tensor, torch.Tensor) for name, tensor in content.items()
    ):
        return content
    odd = (
        next(
            (
                f"{name!r} holds a {type(value).__name__}"
                for name, value in content.items()
                if not isinstance(name, str) or not isinstance(value, torch.Tensor)
            ),
            "",
        )
        if isinstance(content, dict)
        else f"it holds a {type(content).__name__}"
    )
    raise UserError(
        f"{path} is not a state dict: expected a flat dict of tensor names to tensors, as "
        f"save_pretrained and torch.save(model.state_dict()) write, but {odd}. Save the weights again "
        "from the model (as safetensors where possible)."
    )
