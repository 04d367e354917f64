"""The one switch that picks the CPU kernels of this process: ``onednn``, ``torch-matmul`` or ``torch``.

Each set is two parts (:data:`KERNEL_SETS`): who computes the linear products, and whose dropout
runs. ``onednn`` is lmtrain's CPU fast paths together: fp32 linear products on oneDNN
(:mod:`lmtrain.kernels.cpu.linear`), prepacked weights for decoding (:mod:`lmtrain.kernels.cpu.prepacked`)
and the cheaper dropout mask (:mod:`lmtrain.kernels.cpu.dropout`, also inside attention,
:mod:`lmtrain.kernels.cpu.attention`, whose forward and backward it writes out in fp32); a training run
on CPU with either of lmtrain's sets also keeps freed memory for reuse (:mod:`lmtrain.kernels.cpu.heap`).
``torch-matmul`` is PyTorch's matrix products (MKL on x86)
with that same cheaper dropout and attention: the better set where MKL's products beat oneDNN's
(Intel CPUs, where oneDNN's weight-gradient products are the slow part). ``torch`` is PyTorch's own
ops throughout. ``auto`` chooses between the two sets that share the dropout, so only the products
differ: ``onednn`` where its private ops run and a start-up check (:mod:`lmtrain.kernels.probe`)
finds its products clearly faster on this CPU, ``torch-matmul`` where it finds them clearly slower
or they cannot run, and a tie by a rule (:mod:`lmtrain.kernels.decision`). A training run keeps
that choice per machine (:mod:`lmtrain.kernels.memo`), so every later run of a command picks the
same kernels; its next few runs measure again and switch the choice for the runs after them only
on repeated clear wins. It is decided once per process. A training run selects through
``trainer.cpu_kernels``; a process that selects nothing (``lmtrain generate``, ``evaluate``,
``predict``, a script) gets ``auto`` on its first kernel call, timed on the forward products alone (it
trains nothing) and kept in the memo under its own entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch

from lmtrain.errors import UserError
from lmtrain.files.cache_home import cache_home
from lmtrain.kernels.cpu.linear import onednn_ops_present
from lmtrain.kernels.decision import RULE, KeptChoice, judge, review, rule_kernels
from lmtrain.kernels.memo import MEMO_FILE, Memo, keep, kept_choice, read_memo
from lmtrain.kernels.probe import check_onednn_ops, cpu_has_wide_vectors, time_kernels

log = logging.getLogger(__name__)

# each set: (linear products on oneDNN, lmtrain's cheaper dropout and attention)
KERNEL_SETS = {"onednn": (True, True), "torch-matmul": (False, True), "torch": (False, False)}
CPU_KERNEL_CHOICES = ("auto", *KERNEL_SETS)
_state: dict[str, tuple[str, str] | None] = {
    "active": None,  # (kernels, why) in force; None until the first selection
    "auto": None,  # what ``auto`` resolved to on CPU, measured once per process
}


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _today() -> str:
    """Today's date (UTC), as the memo records when a choice was made."""
    return datetime.now(timezone.utc).date().isoformat()


def _first_choice(memo: Memo, measure: bool, wide_vectors: bool, training: bool) -> tuple[str, str]:
    """The kernels of a machine with no kept choice: measured (and kept in ``memo``), or by rule without measuring."""
    if not measure:
        kernels = rule_kernels(wide_vectors)
        return kernels, f"auto: by rule {RULE}, not measured in this process (the job's first process decides)"
    verdict = judge(time_kernels(backward=training), wide_vectors)
    failed = keep(memo, KeptChoice(verdict.kernels, verdict.why, _today()), training)
    kept = f"kept for this machine in {memo.path}" if failed is None else f"not kept in {memo.path}: {failed}"
    return verdict.kernels, f"auto: {verdict.why}; {kept}"


def _auto_by_memo(path: Path, measure: bool, key: str, training: bool) -> tuple[str, str]:
    """``auto`` with a memo: the kept choice of this machine (re-measured by its first few later runs), or a first one.

    A re-measurement only changes what the memo keeps for later runs, never this run's kernels.
    """
    memo = read_memo(path)
    kept, problem = kept_choice(memo, training)
    if memo.problem or problem:
        # a command that trains nothing has no kernel key to set: deleting the file is its way out
        choose = f", or set {key}=onednn or {key}=torch-matmul" if training else ""
        advice = (
            f" auto measures in every run, so two runs may pick different kernels (and dropout masks): delete the "
            f"file{choose}."
            if memo.problem
            else ""
        )
        subject = f"{key}=auto" if training else "the CPU kernels' auto choice"
        log.warning("The memo of %s, %s, is not used as it is: %s.%s", subject, path, memo.problem or problem, advice)
    wide_vectors = cpu_has_wide_vectors()
    if kept is None:
        return _first_choice(memo, measure, wide_vectors, training)
    why = f"auto: {kept.describe()}"
    if kept.settled:
        return kept.kernels, f"{why}, confirmed by {kept.reviews} later checks"
    if not measure:
        return kept.kernels, why
    updated, outcome = review(kept, judge(time_kernels(backward=training), wide_vectors), _today())
    failed = keep(memo, updated, training)
    return kept.kernels, f"{why}; {outcome}" + ("" if failed is None else f" (not kept in {path}: {failed})")


def _resolve_auto(memo: Path | None, measure: bool, key: str, training: bool) -> tuple[str, str]:
    """``auto`` on CPU: (kernels, why), resolved on the first call of the process only; warns once when oneDNN
    fails. With ``memo``, this machine's kept choice (see :mod:`lmtrain.kernels.memo`); without, a measurement
    (of the forward products only unless ``training``)."""
    resolved = _state["auto"]
    if resolved is None:
        resolved = _state["auto"] = _first_auto(memo, measure, key, training)
    return resolved


def _first_auto(memo: Path | None, measure: bool, key: str, training: bool) -> tuple[str, str]:
    """What ``auto`` resolves to in this process: (kernels, why); see :func:`_resolve_auto`."""
    if not onednn_ops_present():
        log.warning(
            "oneDNN's linear ops (torch.ops.mkldnn._linear_pointwise) are missing from this "
            "PyTorch build or oneDNN is switched off: lmtrain uses PyTorch's matrix products (%s=torch-matmul).",
            key,
        )
        return "torch-matmul", "auto: oneDNN ops missing"
    try:
        check_onednn_ops()
        if memo is not None:
            return _auto_by_memo(memo, measure, key, training)
        verdict = judge(time_kernels(backward=training), cpu_has_wide_vectors())
        return verdict.kernels, f"auto: {verdict.why}"
    except (RuntimeError, TypeError, AttributeError, NotImplementedError) as error:
        log.warning(
            "oneDNN's linear ops failed their start-up check (%s): lmtrain uses PyTorch's matrix products "
            "(%s=torch-matmul).",
            _first_line(error),
            key,
        )
        return "torch-matmul", "auto: oneDNN ops failed their check"


def _require_onednn(key: str) -> None:
    """Raise a UserError naming ``key`` unless the oneDNN kernels run in this PyTorch build."""
    problem = "" if onednn_ops_present() else "its oneDNN linear ops are missing or oneDNN is switched off"
    if not problem:
        try:
            check_onednn_ops()
        except (RuntimeError, TypeError, AttributeError, NotImplementedError) as error:
            problem = f"its oneDNN linear ops fail ({_first_line(error)})"
    if problem:
        raise UserError(
            f"{key}=onednn, but this PyTorch build ({torch.__version__}) cannot run lmtrain's "
            f"oneDNN kernels: {problem}. Use {key}=auto (falls back by itself), {key}=torch-matmul or {key}=torch."
        )


def select_cpu_kernels(
    choice: str,
    device: torch.device | str = "cpu",
    key: str = "trainer.cpu_kernels",
    memo: Path | None = None,
    measure: bool = True,
    training: bool = True,
) -> tuple[str, str]:
    """Put the CPU kernels of ``choice`` in force for this process.

    Args:
        choice: ``auto`` or one of :data:`KERNEL_SETS`.
        device: where the model runs; ``auto`` off CPU picks ``torch`` without measuring (the CPU
            kernels would serve nothing).
        key: the config key or option ``choice`` came from, for error messages.
        memo: a file that keeps ``auto``'s choice per machine (see :mod:`lmtrain.kernels.memo`); None = measure.
        measure: whether ``auto`` may time the kernels and write ``memo`` (False in the other processes of a
            job whose first process decides: they take the kept choice, or the tie rule until told).
        training: whether the process trains; without a memo, False makes ``auto`` time the forward products only.
    Returns:
        (kernels, why): one of :data:`KERNEL_SETS`, and the reason in words for the log.
    Raises:
        UserError: ``choice`` is not one of :data:`CPU_KERNEL_CHOICES`, or is ``onednn`` where
            those kernels cannot run.
    """
    if choice not in CPU_KERNEL_CHOICES:
        raise UserError(f"{key}={choice} is not a kind of CPU kernels: use one of {', '.join(CPU_KERNEL_CHOICES)}.")
    if choice == "onednn":
        _require_onednn(key)
        chosen = ("onednn", f"{key}=onednn")
    elif choice in KERNEL_SETS:
        chosen = (choice, f"{key}={choice}")
    elif torch.device(device).type != "cpu":
        chosen = ("torch", f"auto: the model runs on {torch.device(device).type}")
    else:
        chosen = _resolve_auto(memo, measure, key, training)
    _state["active"] = chosen
    return chosen


def active_cpu_kernels() -> str:
    """The kernel set in force, one of :data:`KERNEL_SETS`.

    A process that selected nothing (``generate``, ``evaluate``, ``predict``: no training) selects ``auto`` now:
    the memo's choice for processes that train nothing, timed on the forward products only where it has none.
    """
    active = _state["active"]
    if active is None:
        active = select_cpu_kernels("auto", training=False, memo=cache_home() / MEMO_FILE)
        log.info("CPU kernels: %s (%s)", *active)
    return active[0]


def use_onednn_products() -> bool:
    """Whether linear products run on oneDNN (``onednn``), selecting ``auto`` now if nothing was selected."""
    return KERNEL_SETS[active_cpu_kernels()][0]


def use_cheap_dropout() -> bool:
    """Whether dropout, in attention too, draws lmtrain's cheaper mask (``onednn`` and ``torch-matmul``)."""
    return KERNEL_SETS[active_cpu_kernels()][1]


def use_cpu_kernels() -> bool:
    """Whether any of lmtrain's CPU kernels are in force (every set but ``torch``); selects them if not yet."""
    return active_cpu_kernels() != "torch"


@contextmanager
def cpu_kernels(choice: str) -> Iterator[str]:
    """Within the block ``choice`` is in force (benchmarks and tests compare the sets); yields the kernels."""
    previous = _state["active"]
    try:
        yield select_cpu_kernels(choice, key="cpu_kernels")[0]
    finally:
        _state["active"] = previous
