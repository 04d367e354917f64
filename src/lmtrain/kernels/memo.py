"""What ``trainer.cpu_kernels=auto`` decided on this machine, kept in a small JSON file.

The two kernel sets draw dropout masks differently, so two runs of one command could train
differently if each run measured anew. A decision is therefore kept, keyed by the CPU, the
PyTorch version and the thread count, and reused by every later run on the same machine: one
command, one result. But a timing taken on a busy machine can mislead, so only a clear win
(:mod:`lmtrain.kernels.decision`) that :data:`SETTLE_AFTER` runs in a row agree on is kept; a tie
or a disagreement starts the count again, and until then every run measures.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch

SETTLE_AFTER = 2  # clear wins in a row, each in its own run, before a decision is kept
_KERNELS = ("onednn", "torch")


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


def _read(path: Path) -> dict:
    """The memo's entries, or none when it is missing, damaged or not a JSON object."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _clear_wins(entry: object) -> tuple[str | None, int]:
    """(kernels, clear wins in a row) of an entry; (None, 0) for anything else (an older memo's entry)."""
    if not isinstance(entry, dict) or entry.get("kernels") not in _KERNELS:
        return None, 0
    wins = entry.get("clear_wins")
    return (entry["kernels"], wins) if isinstance(wins, int) and not isinstance(wins, bool) else (None, 0)


def recall(path: Path) -> tuple[str, str] | None:
    """The settled (kernels, why) stored in ``path`` for this machine, or None (none settled, another machine,
    unreadable)."""
    entry = _read(path).get(machine_key())
    kernels, wins = _clear_wins(entry)
    if kernels is None or wins < SETTLE_AFTER:
        return None
    return kernels, f"auto, as settled on this machine before by {wins} runs in a row ({entry.get('why', '')})"


def note_measurement(path: Path, kernels: str | None, why: str) -> str:
    """Count this run's clear win for ``kernels`` in ``path`` (None: a tie, which starts the count again).

    Written atomically; a read-only or full disk only loses the memo.

    Returns:
        What became of the measurement, for the log.
    """
    stored = _read(path)
    key = machine_key()
    before, wins = _clear_wins(stored.get(key))
    if kernels is None:
        outcome = "not kept: a tie is measured again next run"
        if stored.pop(key, None) is None:
            return outcome  # nothing to start again: the file stays as it was (or absent)
    else:
        wins = wins + 1 if before == kernels else 1
        stored[key] = {"kernels": kernels, "why": why, "clear_wins": wins}
        outcome = (f"kept for this machine: {wins} runs in a row agree" if wins >= SETTLE_AFTER else
                   f"not kept yet: kept once {SETTLE_AFTER} runs in a row agree")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".tmp-", delete=False) as handle:
            json.dump(stored, handle, indent=1)
        os.replace(handle.name, path)
    except OSError:
        return f"not kept: the memo {path} cannot be written"
    return outcome
