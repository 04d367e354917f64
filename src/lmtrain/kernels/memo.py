"""The choice ``trainer.cpu_kernels=auto`` keeps per machine, in a small JSON file it writes itself.

The kernel sets draw dropout masks or sum products differently, so a run's kernels must not
depend on the timing noise of that run: one command, one result. Each machine (CPU model, PyTorch version,
thread count) therefore gets one kept choice (:class:`~lmtrain.kernels.decision.KeptChoice`),
which every later run uses; later measurements only decide whether the runs after them switch.

A process that trains nothing (``lmtrain predict``, ``generate``, ``evaluate``) keeps its own entry per machine,
timed on the forward products alone (``... | forward only``): without it, every such command would time the
kernels again, about a second on a 2-core CPU, and could pick differently from one call to the next.

The file is only ever replaced whole (a temporary file renamed over it). A file that is not a
memo (damaged, not JSON, a symbolic link, a folder) is neither followed nor overwritten: ``auto``
then measures in every run and says so once per run.

An entry made by an earlier check (another :data:`~lmtrain.kernels.probe.PROBE_VERSION`, or none:
lmtrain before ``torch-matmul``, whose check timed the products together with each side's dropout)
keeps its kernels, ``torch`` read as ``torch-matmul`` (the same products), but not its standing:
the next runs check it again with today's probe and may switch it.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lmtrain.kernels.decision import AUTO_SETS, KeptChoice
from lmtrain.kernels.probe import PROBE_VERSION

# what an earlier lmtrain's ``auto`` kept, as the set of today's choices with the same products
EARLIER_SETS = {"torch": "torch-matmul", "onednn": "onednn"}
MAX_BYTES = 1 << 20  # a memo holds a few lines per machine; anything larger is not one
MEMO_FILE = "cpu_kernels.json"  # the memo's name in the cache home (lmtrain.files.cache_home)


def machine_key(training: bool = True) -> str:
    """The CPU model, the PyTorch version and the thread count: what the timing depends on; for a process that
    trains nothing (``training`` False), with `` | forward only``: its choice is timed on the forward products."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    key = f"{cpu} | torch {torch.__version__} | {torch.get_num_threads()} threads"
    return key if training else f"{key} | forward only"


@dataclass
class Memo:
    """A memo file as read: its entries by machine, and why it cannot be used (None when it can)."""

    path: Path
    entries: dict = field(default_factory=dict)
    problem: str | None = None


def read_memo(path: Path) -> Memo:
    """The memo at ``path``: no entries when it does not exist, a ``problem`` when it is not a memo."""
    if path.is_symlink():
        return Memo(path, problem="it is a symbolic link, which lmtrain neither follows nor replaces")
    if not path.exists():
        return Memo(path)
    if path.is_dir():
        return Memo(path, problem="it is a folder, not a file")
    try:
        if path.stat().st_size > MAX_BYTES:
            return Memo(path, problem=f"it is larger than a memo can be ({MAX_BYTES} bytes)")
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return Memo(path, problem=f"it cannot be read as JSON ({type(error).__name__}: {str(error)[:80]})")
    if not isinstance(entries, dict):
        return Memo(path, problem="it holds no JSON object of machines")
    return Memo(path, entries)


def _count(value: object) -> int:
    """A stored count, or 0 where a hand edit left something else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _earlier_choice(kernels: str, why: str, decided: str) -> KeptChoice:
    """An entry of an earlier check (``kernels`` one of :data:`EARLIER_SETS`), unsettled and in today's names."""
    renamed = "" if EARLIER_SETS[kernels] == kernels else f", as {kernels} (the products of {EARLIER_SETS[kernels]})"
    why = f"{why}; by an earlier check that timed each side's dropout too{renamed}: checked again by the next runs"
    return KeptChoice(EARLIER_SETS[kernels], why, decided)


def kept_choice(memo: Memo, training: bool = True) -> tuple[KeptChoice | None, str | None]:
    """This machine's kept choice in ``memo`` (None: none kept), with a problem to log when its entry is unusable;
    ``training`` False: the entry of processes that train nothing (see :func:`machine_key`).

    An entry of an earlier check comes back unsettled and in today's names (see the module docstring).
    """
    entry = memo.entries.get(machine_key(training))
    if entry is None:
        return None, None
    fields = entry if isinstance(entry, dict) else {}
    kernels, why, decided = fields.get("kernels"), fields.get("why"), fields.get("decided")
    why = why if isinstance(why, str) else "no reason stored"
    decided = decided if isinstance(decided, str) else ""
    if fields.get("probe") != PROBE_VERSION and kernels in EARLIER_SETS:
        return _earlier_choice(kernels, why, decided), None
    if kernels not in AUTO_SETS:
        return None, (
            f"its entry for this machine names CPU kernels {kernels!r}, which are none of "
            f"{', '.join(AUTO_SETS)}; the entry is measured anew and replaced"
        )
    return KeptChoice(kernels, why, decided, _count(fields.get("reviews")), _count(fields.get("challenges"))), None


def keep(memo: Memo, choice: KeptChoice, training: bool = True) -> str | None:
    """Store ``choice`` as this machine's entry of ``memo`` (``training`` as for :func:`kept_choice`), beside the
    other machines' entries.

    Returns:
        None once written, else why it was not (a read-only or full disk only costs the memo).
    """
    if memo.problem is not None:
        return memo.problem
    entries = {**memo.entries, machine_key(training): asdict(choice)}
    handle = None
    try:
        memo.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=memo.path.parent, prefix=".tmp-", suffix=".json", delete=False, encoding="utf-8"
        ) as handle:
            json.dump(entries, handle, indent=1)
        if memo.path.is_symlink() or memo.path.is_dir():  # appeared since it was read
            raise IsADirectoryError("it became a symbolic link or a folder while lmtrain measured")
        os.replace(handle.name, memo.path)
    except OSError as error:
        if handle is not None:
            Path(handle.name).unlink(missing_ok=True)
        return f"it cannot be written ({error.strerror or error})"
    memo.entries = entries
    return None
