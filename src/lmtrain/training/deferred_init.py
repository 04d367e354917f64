"""Models built on the meta device and initialised shard by shard (FSDP), with the weights a normal build gives.

A model built under ``torch.device("meta")`` allocates no memory, so the largest model FSDP can train is no
longer bounded by one host's memory. To give it exactly the initial weights the same seed gives a normal build
(so an FSDP run's losses equal a DDP or single-process run's), the build runs under a recorder of every
operation it dispatches, and the recording is replayed on the CPU in the same order:

- random operations draw from the global generator in the normal build's order, so every weight is the one the
  normal build draws, and the generator ends where a normal build leaves it;
- a tensor's memory is dropped as soon as no later operation reads it: a ``Linear``'s default initialisation,
  which the model's own ``_init_weights`` redraws, is drawn (to keep the generator in step) and dropped at once;
- once a parameter or buffer has had its last operation, its value is cut to this rank's shard (the slice
  ``fully_shard`` will give this rank) and the full tensor is dropped.

So at most one full tensor (the largest, the vocabulary matrix) is held at a time, beside this rank's shards.
The shards wait (on the CPU) until the Trainer has sharded the meta model, then :func:`materialise` allocates
each rank's shards on its device and copies them in. Weights loaded during the build (a fine-tuned backbone's
``load_state_dict``) are replayed like any other operation.
"""

from __future__ import annotations

import functools
import logging
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from lmtrain.errors import UserError

log = logging.getLogger(__name__)

_Model = TypeVar("_Model", bound=nn.Module)  # the built model's own class
aten = torch.ops.aten

# operations that overwrite all of their first argument without reading it: the value before them is dead
_OVERWRITES = {
    aten.normal_.default,
    aten.uniform_.default,
    aten.zero_.default,
    aten.fill_.Scalar,
    aten.fill_.Tensor,
    aten.copy_.default,
    aten.random_.default,
    getattr(aten.random_, "from"),
    aten.random_.to,
    aten.bernoulli_.float,
    aten.exponential_.default,
}
# meta model -> {parameter or buffer name: its initial value on this rank (a shard for parameters)}
_PENDING: weakref.WeakKeyDictionary[nn.Module, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ShardLayout:
    """This rank's place along FSDP's shard dimension: ``shards`` ranks split each parameter's first dimension
    (``torch.chunk``, as ``fully_shard`` does) and this rank keeps chunk ``index``."""

    shards: int = 1
    index: int = 0

    def local(self, full: torch.Tensor) -> torch.Tensor:
        """This rank's shard of ``full`` (a copy; empty along dim 0 where ``fully_shard`` gives this rank none)."""
        if full.dim() == 0 or self.shards == 1:
            return full.clone()
        chunks = torch.chunk(full, self.shards, dim=0)
        if self.index < len(chunks):
            return chunks[self.index].clone()
        return full.new_empty((0, *full.shape[1:]))


@dataclass
class _Op:
    func: Callable[..., Any]  # the operator overload the dispatch mode saw
    args: tuple
    kwargs: dict
    out: object


class _ValuesOnCpu(TorchFunctionMode):
    """``torch.tensor(data)`` and its kin under the meta device: made on the CPU, then moved to the meta device,
    so the recorder sees the move with the real values (made straight on the meta device, the data is lost)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and kwargs.get("device") in (None, "meta"):
            return func(*args, **{**kwargs, "device": "cpu"}).to("meta")
        return func(*args, **kwargs)


class _Recorder(TorchDispatchMode):
    """Keeps every operation dispatched while it is active, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[_Op] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append(_Op(func, args, kwargs, out))
        return out


def _key(tensor: torch.Tensor) -> int:
    """The identity of ``tensor``'s storage (views and a Parameter made from a tensor share it)."""
    return tensor.untyped_storage()._cdata


def _meta_tensors(*trees) -> list[torch.Tensor]:
    return [t for t in tree_flatten(trees)[0] if isinstance(t, torch.Tensor) and t.is_meta]


def _covers_its_storage(tensor: torch.Tensor) -> bool:
    return (
        tensor.storage_offset() == 0
        and tensor.is_contiguous()
        and tensor.numel() * tensor.element_size() == tensor.untyped_storage().nbytes()
    )


def _overwrites(op: _Op, key: int) -> bool:
    """Whether ``op`` replaces the whole of storage ``key`` without reading it."""
    if op.func not in _OVERWRITES or not op.args or not isinstance(op.args[0], torch.Tensor):
        return False
    target = op.args[0]
    if not target.is_meta or _key(target) != key or not _covers_its_storage(target):
        return False
    return all(_key(t) != key for t in _meta_tensors(op.args[1:], op.kwargs))


def _uses(ops: list[_Op]) -> dict[int, list[int]]:
    """Storage -> the indices of the operations that touch it, in order."""
    uses: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for key in dict.fromkeys(_key(t) for t in _meta_tensors(op.args, op.kwargs, op.out)):
            uses.setdefault(key, []).append(i)
    return uses


class _Held(dict):
    """Storage -> its real value on the CPU, counting the bytes held at most (``peak``)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = self.peak = 0

    def __setitem__(self, key: int, storage: torch.UntypedStorage) -> None:
        super().__setitem__(key, storage)
        self.bytes += storage.nbytes()
        self.peak = max(self.peak, self.bytes)

    def drop(self, key: int) -> None:
        if key in self:
            self.bytes -= super().pop(key).nbytes()


def replay(ops: list[_Op], finished: dict[int, Callable[[torch.UntypedStorage], None]]) -> int:
    """Run the recorded ``ops`` again on CPU tensors, one after the other, holding only live values.

    Args:
        ops: the recording.
        finished: storage -> called with the storage's real value right after the last operation touching it
            (a parameter's or buffer's final value); every other storage is dropped then.
    Returns:
        The most bytes held at once (beside what ``finished`` keeps).
    """
    uses = _uses(ops)
    following = {(key, a): b for key, indices in uses.items() for a, b in zip(indices, indices[1:])}
    real = _Held()
    made: set[int] = set()

    def on_cpu(value):
        if isinstance(value, torch.device) and value.type == "meta":
            return torch.device("cpu")
        if not isinstance(value, torch.Tensor) or not value.is_meta:
            return value
        key = _key(value)
        if key not in made:
            raise RuntimeError("the build reads a tensor no recorded operation made")
        if key not in real:  # a value that died before an overwrite: any bytes do
            real[key] = torch.empty(value.untyped_storage().nbytes(), dtype=torch.uint8).untyped_storage()
        return torch.empty(0, dtype=value.dtype).set_(real[key], value.storage_offset(), value.size(), value.stride())

    for i, op in enumerate(ops):
        result = op.func(*tree_map(on_cpu, op.args), **tree_map(on_cpu, op.kwargs))
        for output, value in zip(tree_flatten(op.out)[0], tree_flatten(result)[0]):
            if isinstance(output, torch.Tensor) and output.is_meta and _key(output) not in real:
                real[_key(output)] = value.untyped_storage()
                made.add(_key(output))
        for key in dict.fromkeys(_key(t) for t in _meta_tensors(op.args, op.kwargs, op.out)):
            after = following.get((key, i))
            if after is None:
                if key in finished:
                    finished[key](real[key])
                real.drop(key)
            elif _overwrites(ops[after], key):
                real.drop(key)
    return real.peak


def _initial_values(model: nn.Module, ops: list[_Op], layout: ShardLayout) -> dict[str, torch.Tensor]:
    """Replay ``ops`` into this rank's shard of every parameter of ``model`` and every buffer in full."""
    values: dict[str, torch.Tensor] = {}
    by_storage: dict[int, list[tuple[str, torch.Tensor, bool]]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_storage.setdefault(_key(param), []).append((name, param, True))
    for name, buffer in model.named_buffers(remove_duplicate=False):
        by_storage.setdefault(_key(buffer), []).append((name, buffer, False))

    def keep(storage: torch.UntypedStorage, key: int) -> None:
        for name, tensor, sharded in by_storage[key]:
            full = torch.empty(0, dtype=tensor.dtype).set_(
                storage, tensor.storage_offset(), tensor.size(), tensor.stride()
            )
            values[name] = layout.local(full) if sharded else full.clone()

    replay(ops, {key: functools.partial(keep, key=key) for key in by_storage})
    missing = [name for names in by_storage.values() for name, _, _ in names if name not in values]
    if missing:
        raise RuntimeError(f"the recorded build never made {missing[:3]}")
    return values


def build_deferred(build: Callable[[], _Model], layout: ShardLayout) -> _Model:
    """``build()`` on the meta device, with this rank's shards of its initial weights kept for :func:`materialise`.

    The global generator advances exactly as ``build()`` on the CPU would advance it. A model whose build cannot
    run on the meta device (it reads a value, builds a tensor on a named device, seeds or draws from the CPU
    generator itself) is built on the CPU in full instead, with a warning.

    Args:
        build: makes the model (seeded by the caller).
        layout: this rank's place along FSDP's shard dimension.
    """
    before = torch.get_rng_state()
    recorder = _Recorder()
    try:
        with torch.device("meta"), _ValuesOnCpu(), recorder, warnings.catch_warnings():
            # loading weights into the meta model is recorded and replayed: it is no "no-op", as torch warns
            warnings.filterwarnings("ignore", message=".*non-meta parameter in the checkpoint to a meta parameter")
            model = build()
        real = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if not t.is_meta]
        if real:
            raise RuntimeError(f"{real[0]} was made on a named device")
        if not torch.equal(torch.get_rng_state(), before):  # random draws on the meta device leave it alone
            raise RuntimeError("the build seeds or draws from the CPU generator itself")
        # the replay draws what the build would have drawn, from where it would have
        _PENDING[model] = _initial_values(model, recorder.ops, layout)
    except UserError:
        raise
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
        log.warning(
            "the model cannot be built on the meta device (%s); every rank builds it in full on the CPU "
            "before sharding it",
            str(error).splitlines()[0][:200] if str(error) else type(error).__name__,
        )
        torch.set_rng_state(before)
        return build()
    return model


def is_deferred(model: nn.Module) -> bool:
    """Whether ``model`` was built by :func:`build_deferred` and still waits for :func:`materialise`."""
    return model in _PENDING


def materialise(root: nn.Module, model: nn.Module, device: torch.device) -> None:
    """Give the sharded meta ``model`` (inside ``root``, the outermost FSDP unit) real storage on ``device`` and
    its initial values: each rank copies in its own shards."""
    from torch.distributed.tensor import DTensor

    values = _PENDING.pop(model)
    root.to_empty(device=device)  # FSDP re-registers its sharded parameters on the new storage
    with torch.no_grad():
        for name, tensor in [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]:
            local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
            value = values[name]
            if local.shape != value.shape:
                raise RuntimeError(
                    f"{name}: fully_shard gave this rank a shard of shape {tuple(local.shape)}, "
                    f"the deferred initialisation one of {tuple(value.shape)}"
                )
            local.copy_(value)
