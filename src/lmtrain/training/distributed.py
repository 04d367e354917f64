"""Data parallelism on PyTorch's engine: one process per device, launched by `torchrun`.

`torchrun --nproc_per_node=N -m lmtrain pretrain ...` sets RANK / WORLD_SIZE / LOCAL_RANK;
`Distributed.from_env` joins the process group (NCCL on CUDA, gloo on CPU). Rank 0 alone
writes the run directory; every rank reads the same data position, so resume stays exact.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lmtrain.errors import UserError

STRATEGIES = ("auto", "single", "ddp", "fsdp")
# what gloo and NCCL say when the process at the other end of a collective has gone
_PEER_GONE = (
    "Connection reset by peer",
    "Connection closed by peer",
    "Broken pipe",
    "NCCL communicator was aborted",
    "remote process exited",
    "Socket Timeout",
)


def restart_safe_store(timeout: datetime.timedelta) -> dist.Store | None:
    """The rendezvous store of torchrun's agent, with keys kept apart per restart; None outside torchrun.

    torchrun's agent keeps one store for the whole job and its workers join it without a prefix, so
    after ``--max-restarts`` brings workers back, the process group can read the addresses the dead
    workers published and hang, or fail with gloo's "connectFullMesh ... Connection refused". Keying
    each attempt apart (``TORCHELASTIC_RESTART_COUNT``) gives every restart a clean rendezvous.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    agent_store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        int(os.environ["WORLD_SIZE"]),
        is_master=False,
        timeout=timeout,
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"/lmtrain/attempt_{attempt}", agent_store)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def peer_gone(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because the process at its other end has died."""
    return isinstance(error, RuntimeError) and any(text in _first_line(error) for text in _PEER_GONE)


def lost_peer(error: BaseException, rank: int, checkpoints_dir: Path, newest: Path | None) -> UserError:
    """The one-paragraph error for a collective that failed because another process of the job died
    (:func:`peer_gone`). The dead process's own log holds the cause; this one only says that it is
    not the cause and what was kept.
    """
    first_line = _first_line(error)
    kept = (
        f"the newest checkpoint, {newest}, is intact" if newest else f"no intact checkpoint is in {checkpoints_dir} yet"
    )
    return UserError(
        f"rank {rank} lost another process of this job while it waited for it in a collective "
        f"({first_line.split('] ', 1)[-1].split('. ')[0][:200]}). The cause is in the log of the process that "
        f"stopped first (torchrun's summary names it). Nothing was lost: {kept}. Under `torchrun "
        f"--max-restarts=N` the workers continue from it by themselves; otherwise continue "
        f"it with `lmtrain resume {checkpoints_dir.parent}`."
    )


def bind_device(local_rank: int) -> torch.device:
    """Make ``cuda:<local_rank>`` this process's current device (before NCCL or any CUDA work touches ``cuda:0``)."""
    if local_rank >= torch.cuda.device_count():
        raise UserError(
            f"LOCAL_RANK={local_rank}, but this node shows {torch.cuda.device_count()} CUDA device(s): "
            "start at most one process per GPU (`torchrun --nproc_per_node=<GPUs>`), and check "
            "CUDA_VISIBLE_DEVICES."
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _join(device_type: str, local_rank: int, world_size: int, timeout: datetime.timedelta) -> None:
    """``init_process_group``: NCCL bound to this rank's GPU on CUDA, gloo on CPU; restart-safe under torchrun."""
    options: dict[str, Any] = {"timeout": timeout}
    backend = "gloo"
    if device_type == "cuda":
        backend, options["device_id"] = "nccl", bind_device(local_rank)
    store = restart_safe_store(timeout)
    if store is not None:
        options.update(store=store, rank=int(os.environ["RANK"]), world_size=world_size)
    dist.init_process_group(backend, **options)


class Distributed:
    """This process's place in a data-parallel job (a single process is world size 1).

    Args:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this node (selects the CUDA device).
    """

    def __init__(
        self, rank: int = 0, world_size: int = 1, local_rank: int = 0, control_group: Any = None, strategy: str = "ddp"
    ):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        # CPU (gloo) group with the long host timeout: host-side flags and every object collective, barrier and
        # wait (tokenizer, data preparation, saves); None = the default group
        self.control_group = control_group
        self.strategy = strategy if world_size > 1 or strategy == "fsdp" else "single"

    @classmethod
    def from_env(
        cls, strategy: str, device_type: str, timeout: float = 1800.0, host_timeout: float = 6 * 3600.0
    ) -> Distributed:
        """Join the process group `torchrun` describes (or stay single for ``strategy=single``).

        On CUDA each process binds its own GPU (``LOCAL_RANK``) before it joins, and tells NCCL which one
        (``device_id``), so no collective of any rank runs on ``cuda:0`` by default.

        Args:
            strategy: auto (DDP when launched with several processes) | single | ddp | fsdp (FSDP2).
            device_type: cpu or cuda: gloo or NCCL.
            timeout: seconds a collective of the training step may wait (``trainer.dist_timeout``).
            host_timeout: seconds a host-side wait may last (``trainer.host_timeout``): it runs over a gloo
                group of its own, outside NCCL's timeout.
        """
        if strategy not in STRATEGIES:
            raise UserError(f"trainer.strategy={strategy} is not supported; use {', '.join(STRATEGIES)}.")
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if strategy == "single" or (strategy == "auto" and world_size == 1):
            return cls()
        if "RANK" not in os.environ:
            raise UserError(
                f"trainer.strategy={strategy} needs one process per device, started by torchrun: "
                f"`torchrun --nproc_per_node=N -m lmtrain pretrain ... trainer.strategy={strategy}`."
            )
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            _join(device_type, local_rank, world_size, datetime.timedelta(seconds=timeout))
        control = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=host_timeout))
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, control, "fsdp" if strategy == "fsdp" else "ddp")

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_node_main(self) -> bool:
        """The first process of its node (``LOCAL_RANK`` 0): the one that prepares the node's data cache."""
        return self.local_rank == 0

    @property
    def sharded(self) -> bool:
        """Whether parameters are sharded across ranks (FSDP2) rather than replicated (DDP)."""
        return self.strategy == "fsdp"

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes logs, checkpoints and summaries."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One CUDA device per process under DDP; unchanged otherwise."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel (as is in a single process or under FSDP)."""
        if not self.enabled or self.sharded:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def gradient_sync(self, module: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """A context for one micro-batch's backward: all-reduce (DDP) or reduce-scatter (FSDP) only if ``sync``.

        Gradient accumulation syncs on the last micro-batch of the window alone.
        """
        if not self.enabled and not self.sharded:
            return contextlib.nullcontext()
        if self.sharded:
            from torch.distributed.fsdp import FSDPModule

            if not isinstance(module, FSDPModule):
                raise TypeError(f"gradient_sync under FSDP needs the fully_shard step, not {type(module).__name__}")
            module.set_requires_gradient_sync(sync)
            return contextlib.nullcontext()
        if not isinstance(module, DistributedDataParallel):
            raise TypeError(f"gradient_sync under DDP needs the wrapped step, not {type(module).__name__}")
        return contextlib.nullcontext() if sync else module.no_sync()

    def sum(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Element-wise sum of ``values`` over all ranks (one collective for the whole dict)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        flat = torch.stack([values[k].detach().double().reshape(()) for k in keys])
        dist.all_reduce(flat)
        return {k: flat[i].to(values[k].dtype) for i, k in enumerate(keys)}

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank, agreed on CPU (never waits for queued device work)."""
        if not self.enabled:
            return flag
        value = torch.tensor(float(flag))
        dist.all_reduce(value, group=self.control_group)
        return bool(value > 0)

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (one entry in a single process)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj, group=self.control_group)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control_group)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank arrives (over the host group: waits for data or a save are not NCCL's)."""
        if self.enabled:
            dist.barrier(group=self.control_group)

    def close(self) -> None:
        """Leave the process group."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
