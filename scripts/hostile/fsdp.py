"""trainer.fsdp_replicas / trainer.fsdp_reduce_fp32: bad values, and values where they would change nothing, are
refused with exit 2 (the config's before any work; a mesh that does not fit the job as it starts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable

from hostile.common import TINY, Outcome, Workspace, refused


def _config_refused(*overrides: str, says: str) -> Callable[[Workspace], Outcome]:
    """A probe: ``lmtrain pretrain <overrides>`` exits 2 before any work, with ``says`` in its message."""

    def probe(ws: Workspace) -> Outcome:
        return refused(ws.lmtrain("pretrain", *overrides, timeout=120), says)

    return probe


def replicas_that_do_not_divide_the_job(ws: Workspace) -> Outcome:
    """A one-process job as torchrun describes it (RANK, WORLD_SIZE ...) asked for 2 replica groups."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "HYDRA_FULL_ERROR": "0",
        "OMP_NUM_THREADS": "1",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "pretrain",
            *TINY,
            *ws.data,
            "trainer.strategy=fsdp",
            "trainer.fsdp_replicas=2",
            f"hydra.run.dir={ws.root / 'replicas-2-of-1'}",
        ],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return refused(proc, "trainer.fsdp_replicas=2 must divide the 1 processes")


FSDP, BF16 = "trainer.strategy=fsdp", "trainer.precision=bf16"
PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "fsdp_replicas=0": _config_refused(FSDP, "trainer.fsdp_replicas=0", says="trainer.fsdp_replicas=0: must be >= 1"),
    "fsdp_replicas=two": _config_refused(FSDP, "trainer.fsdp_replicas=two", says="trainer.fsdp_replicas"),
    "fsdp_replicas=2 under ddp": _config_refused(
        "trainer.strategy=ddp",
        "trainer.fsdp_replicas=2",
        says="trainer.fsdp_replicas=2: must be unset unless trainer.strategy=fsdp",
    ),
    "fsdp_replicas=2 for 1 process": replicas_that_do_not_divide_the_job,
    "fsdp_reduce_fp32=maybe": _config_refused(
        FSDP, BF16, "trainer.fsdp_reduce_fp32=maybe", says="trainer.fsdp_reduce_fp32"
    ),
    "fsdp_reduce_fp32=true in fp32": _config_refused(
        FSDP,
        "trainer.fsdp_reduce_fp32=true",
        says="trainer.fsdp_reduce_fp32=true: must be unset unless trainer.precision=bf16",
    ),
    "fsdp_reduce_fp32=false without fsdp": _config_refused(
        BF16,
        "trainer.fsdp_reduce_fp32=false",
        says="trainer.fsdp_reduce_fp32=false: must be unset unless trainer.strategy=fsdp",
    ),
}
