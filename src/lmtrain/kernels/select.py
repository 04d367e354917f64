"""The one switch that picks the CPU kernels of this process: lmtrain's (``onednn``) or PyTorch's (``torch``).

``onednn`` means lmtrain's CPU fast paths together: fp32 linear products on oneDNN
(:mod:`lmtrain.kernels.cpu.linear`), the cheaper dropout mask (:mod:`lmtrain.kernels.cpu.dropout`,
also inside attention) and prepacked weights for decoding (:mod:`lmtrain.kernels.cpu.prepacked`).
``torch`` means PyTorch's own ops throughout. ``auto`` takes ``onednn`` where its private ops run
and a start-up check (:mod:`lmtrain.kernels.probe`) finds them faster on this CPU, else ``torch``;
it is decided once per process. A training run selects through ``trainer.cpu_kernels``; a process
that selects nothing (``lmtrain generate``, ``evaluate``, ``predict``, a script) gets ``auto`` on its
first kernel call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from lmtrain.errors import UserError
from lmtrain.kernels.cpu.linear import onednn_ops_present
from lmtrain.kernels.memo import recall, remember
from lmtrain.kernels.probe import check_onednn_ops, time_kernels

log = logging.getLogger(__name__)

CPU_KERNEL_CHOICES = ("auto", "onednn", "torch")
_state: dict[str, tuple[str, str] | None] = {
    "active": None,  # (kernels, why) in force; None until the first selection
    "auto": None,  # what ``auto`` resolved to on CPU, measured once per process
}


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _resolve_auto(memo: Path | None = None) -> tuple[str, str]:
    """``auto`` on CPU: (kernels, why), measured on the first call only (or taken from ``memo``, this machine's
    earlier decision, and stored there); warns once when oneDNN fails."""
    if _state["auto"] is None and memo is not None:
        _state["auto"] = recall(memo)
    if _state["auto"] is None:
        if not onednn_ops_present():
            log.warning("oneDNN's linear ops (torch.ops.mkldnn._linear_pointwise) are missing from this "
                        "PyTorch build or oneDNN is switched off: lmtrain uses PyTorch's own CPU kernels.")
            _state["auto"] = ("torch", "auto: oneDNN ops missing")
        else:
            try:
                check_onednn_ops()
                times = time_kernels()
            except (RuntimeError, TypeError, AttributeError, NotImplementedError) as error:
                log.warning("oneDNN's linear ops failed their start-up check (%s): lmtrain uses PyTorch's own "
                            "CPU kernels.", _first_line(error))
                _state["auto"] = ("torch", "auto: oneDNN ops failed their check")
            else:
                _state["auto"] = ("onednn" if times.onednn_faster else "torch", f"auto: {times.describe()}")
                if memo is not None:
                    remember(memo, *_state["auto"])
    return _state["auto"]


def _require_onednn(key: str) -> None:
    """Raise a UserError naming ``key`` unless the oneDNN kernels run in this PyTorch build."""
    problem = "" if onednn_ops_present() else "its oneDNN linear ops are missing or oneDNN is switched off"
    if not problem:
        try:
            check_onednn_ops()
        except (RuntimeError, TypeError, AttributeError, NotImplementedError) as error:
            problem = f"its oneDNN linear ops fail ({_first_line(error)})"
    if problem:
        raise UserError(f"{key}=onednn, but this PyTorch build ({torch.__version__}) cannot run lmtrain's "
                        f"oneDNN kernels: {problem}. Use {key}=auto (falls back by itself) or {key}=torch.")


def select_cpu_kernels(choice: str, device: torch.device | str = "cpu",
                       key: str = "trainer.cpu_kernels", memo: Path | None = None) -> tuple[str, str]:
    """Put the CPU kernels of ``choice`` in force for this process.

    Args:
        choice: ``auto``, ``onednn`` or ``torch``.
        device: where the model runs; ``auto`` off CPU picks ``torch`` without measuring (the CPU
            kernels would serve nothing).
        key: the config key or option ``choice`` came from, for error messages.
        memo: a file that keeps ``auto``'s decision per machine (see :mod:`lmtrain.kernels.memo`); None = measure.
    Returns:
        (kernels, why): ``onednn`` or ``torch``, and the reason in words for the log.
    Raises:
        UserError: ``choice`` is not one of :data:`CPU_KERNEL_CHOICES`, or is ``onednn`` where
            those kernels cannot run.
    """
    if choice not in CPU_KERNEL_CHOICES:
        raise UserError(f"{key}={choice} is not a kind of CPU kernels: use one of {', '.join(CPU_KERNEL_CHOICES)}.")
    if choice == "onednn":
        _require_onednn(key)
        chosen = ("onednn", f"{key}=onednn")
    elif choice == "torch":
        chosen = ("torch", f"{key}=torch")
    elif torch.device(device).type != "cpu":
        chosen = ("torch", f"auto: the model runs on {torch.device(device).type}")
    else:
        chosen = _resolve_auto(memo)
    _state["active"] = chosen
    return chosen


def use_cpu_kernels() -> bool:
    """Whether lmtrain's CPU kernels are in force (selecting ``auto`` now if nothing was selected)."""
    active = _state["active"]
    if active is None:
        active = select_cpu_kernels("auto")
        log.info("CPU kernels: %s (%s)", *active)
    return active[0] == "onednn"


@contextmanager
def cpu_kernels(choice: str) -> Iterator[str]:
    """Within the block ``choice`` is in force (benchmarks and tests compare both); yields the kernels."""
    previous = _state["active"]
    try:
        yield select_cpu_kernels(choice, key="cpu_kernels")[0]
    finally:
        _state["active"] = previous
