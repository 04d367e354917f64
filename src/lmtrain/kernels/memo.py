"""What ``trainer.cpu_kernels=auto`` decided on this machine, kept in a small JSON file.

``auto`` times both kernel sets, and a timing can come out either way on a busy machine. The two
sets draw dropout masks differently, so two runs of one command could train differently. The
first decision is therefore kept, keyed by the CPU, the PyTorch version and the thread count, and
reused by every later run on the same machine: one command, one result.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch


def machine_key() -> str:
    """The CPU model, the PyTorch version and the thread count: what the timing depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def recall(path: Path) -> tuple[str, str] | None:
    """The (kernels, why) stored in ``path`` for this machine, or None (none stored, another machine, unreadable)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    entry = stored.get(machine_key()) if isinstance(stored, dict) else None
    if isinstance(entry, dict) and entry.get("kernels") in ("onednn", "torch"):
        return entry["kernels"], f"auto, as decided on this machine before ({entry.get('why', '')})"
    return None


def remember(path: Path, kernels: str, why: str) -> None:
    """Store this machine's decision in ``path`` (atomically; a read-only or full disk only loses the memo)."""
    try:
        stored = json.loads(path.read_text()) if path.exists() else {}
        stored = stored if isinstance(stored, dict) else {}
        stored[machine_key()] = {"kernels": kernels, "why": why}
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".tmp-", delete=False) as handle:
            json.dump(stored, handle, indent=1)
        os.replace(handle.name, path)
    except (OSError, ValueError):
        pass
