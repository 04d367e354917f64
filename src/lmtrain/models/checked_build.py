"""Build the model a checkpoint's ``model.json`` describes without trusting it.

A run folder is data that users download and share, so its ``model.json`` may describe a model of a
million layers or a billion-word vocabulary. Before anything is allocated, every size in it is
compared with what the weight file holds (its safetensors header: names and shapes, no tensor read):

1. no whole number in the spec may exceed the number of weights in the file;
2. the model is built on the meta device (no memory) and stops as soon as it has registered more
   parameters than the file has tensors (a deep ``n_layers`` is refused after a few layers);
3. every weight the meta model shares with the file must have the file's shape.

Only then is the real model built; loading its weights stays strict (``load_weights``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from lmtrain.models.skip_init import weights_left_as_allocated


class _TooManyParameters(Exception):
    """Raised inside the meta build once it registers more parameters than the weight file holds."""


def weight_shapes(checkpoint: Path) -> dict[str, tuple[int, ...]] | None:
    """Name -> shape of every tensor in ``checkpoint``'s ``model.safetensors`` (None for a sharded checkpoint,
    or a file whose header cannot be read: loading then reports it)."""
    path = checkpoint / ckpt.WEIGHTS
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118 -- safe_open is not iterable
    except Exception:  # a damaged header: load_weights names the file and the problem
        return None


def _whole_numbers(values: Any, prefix: str = "spec") -> Iterator[tuple[str, int]]:
    if isinstance(values, dict):
        for key, value in values.items():
            yield from _whole_numbers(value, f"{prefix}.{key}")
    elif isinstance(values, (list, tuple)):
        for index, value in enumerate(values):
            yield from _whole_numbers(value, f"{prefix}.{index}")
    elif isinstance(values, int) and not isinstance(values, bool):
        yield prefix, values


@contextlib.contextmanager
def _parameter_budget(limit: int) -> Iterator[None]:
    """Raise :class:`_TooManyParameters` once more than ``limit`` parameters are registered in the block."""
    count = 0

    def hook(module: nn.Module, name: str, param: Any) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise _TooManyParameters

    handle = nn.modules.module.register_module_parameter_registration_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def check_against_weights(build: Any, meta: dict[str, Any], checkpoint: Path) -> None:
    """Refuse a ``model.json`` whose model the weight file cannot hold, before any real allocation.

    Args:
        build: ``meta -> model`` (the family's ``from_meta``).
        meta: the checkpoint's ``model.json``.
        checkpoint: the checkpoint folder.
    Raises:
        UserError: naming ``model.json``, the key or weight, and what the file holds.
    """
    shapes = weight_shapes(checkpoint)
    if not shapes:
        return
    source = checkpoint / ckpt.MODEL_META
    total = sum(math.prod(shape) for shape in shapes.values())
    for key, value in _whole_numbers(meta.get("spec", {})):
        if value < 0 or value > total:
            raise UserError(
                f"{source}: {key}={value} cannot describe the model in {checkpoint / ckpt.WEIGHTS}, which "
                f"holds {total:,} weights in all; the file was altered or belongs to another model. Use "
                "the model.json written with these weights."
            )
    try:
        # tied weights register twice; no initialiser runs (on meta tensors they would import torch._dynamo)
        with torch.device("meta"), _parameter_budget(2 * len(shapes) + 16), weights_left_as_allocated():
            probe = build(meta)
    except _TooManyParameters:
        raise UserError(
            f"{source} describes a model with more weight tensors than the {len(shapes)} in "
            f"{checkpoint / ckpt.WEIGHTS} (its sizes, such as spec.n_layers, were altered or belong to "
            "another model); nothing was built. Use the model.json written with these weights."
        ) from None
    except UserError as error:  # the spec's own checks: say which model.json
        text = str(error)
        raise UserError(f"{source}{text[len('model.json') :]}" if text.startswith("model.json:") else text) from None
    except Exception:  # a family whose construction needs real tensors: the strict load still checks the weights
        return
    wrong = [
        (name, tuple(tensor.shape), shapes[name])
        for name, tensor in probe.state_dict().items()
        if name in shapes and tuple(tensor.shape) != shapes[name]
    ]
    if wrong:
        name, wanted, held = wrong[0]
        raise UserError(
            f"{source} describes a model whose {name} has shape {list(wanted)}, but "
            f"{checkpoint / ckpt.WEIGHTS} holds {list(held)} ({len(wrong)} weight(s) differ); the file was "
            "altered or belongs to another model. Nothing was built; use the model.json written with "
            "these weights."
        )
