"""trainer.dist_timeout / trainer.host_timeout / trainer.tf32: bad values are refused before any work."""

from __future__ import annotations

from collections.abc import Callable

from hostile.common import Outcome, Workspace, refused


def host_timeout_not_a_duration(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "trainer.host_timeout=forever", timeout=120)
    return refused(proc, "trainer.host_timeout=forever")


def dist_timeout_zero(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "trainer.dist_timeout=0", timeout=120)
    return refused(proc, "trainer.dist_timeout=0")


def tf32_not_a_bool(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "trainer.tf32=maybe", timeout=120)
    return refused(proc, "trainer.tf32")


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "host_timeout=forever": host_timeout_not_a_duration,
    "dist_timeout=0": dist_timeout_zero,
    "tf32=maybe": tf32_not_a_bool,
}
