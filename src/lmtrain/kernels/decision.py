"""What one measurement of ``auto``'s two kernel sets says: a clear win for one side, or a tie settled by a rule.

The two sets, ``onednn`` and ``torch-matmul``, share lmtrain's dropout and differ only in who
computes the linear products. A win is clear when the faster side's best time beats the slower
side's by more than :data:`NOISE`. Anything closer is a tie, and a tie is decided by a stated rule
rather than by the noise: oneDNN's products where the CPU has AVX-512 or AMX (where oneDNN's fp32
products are at their best), else PyTorch's.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmtrain.kernels.probe import PROBE_VERSION, ProbeTimes

NOISE = 0.05  # best times closer than this are a tie
RULE = "oneDNN where the CPU has AVX-512 or AMX, else torch-matmul"
AUTO_SETS = ("onednn", "torch-matmul")  # what ``auto`` chooses between (and a memo keeps)
LABELS = {"onednn": "oneDNN", "torch-matmul": "torch-matmul"}


@dataclass(frozen=True)
class Verdict:
    """What a measurement calls for: the kernels, the clear winner (None for a tie) and why in words."""

    kernels: str
    winner: str | None
    why: str


def rule_kernels(wide_vectors: bool) -> str:
    """The kernels the tie rule picks on a CPU with (or without) AVX-512 / AMX."""
    return "onednn" if wide_vectors else "torch-matmul"


def judge(times: ProbeTimes, wide_vectors: bool) -> Verdict:
    """The verdict of the timings ``times``.

    Args:
        times: each kernel set's best time.
        wide_vectors: whether this CPU has AVX-512 or AMX (the rule for a tie).
    Returns:
        ``measured 12.1 ms with oneDNN vs 15.3 ms with torch-matmul (...): oneDNN faster by 26%``, or ``...: a
        tie (within 5%), so by rule oneDNN where the CPU has AVX-512 or AMX, else torch-matmul (this CPU has them)``.
    """
    seconds = {"onednn": times.onednn_s, "torch-matmul": times.matmul_s}
    faster, slower = sorted(AUTO_SETS, key=seconds.__getitem__)
    gain = seconds[slower] / max(seconds[faster], 1e-12) - 1
    measured = f"measured {times.describe()}"
    if gain > NOISE:
        return Verdict(faster, faster, f"{measured}: {LABELS[faster]} faster by {gain:.0%}")
    cpu = "has" if wide_vectors else "lacks"
    return Verdict(
        rule_kernels(wide_vectors),
        None,
        f"{measured}: a tie (within {NOISE:.0%}), so by rule {RULE} (this CPU {cpu} them)",
    )


REVIEWS = 4  # later runs that measure again after a choice is kept, before it counts as settled
SWITCH_AFTER = 2  # clear wins for the other side, in separate later runs, that switch a kept choice


@dataclass(frozen=True)
class KeptChoice:
    """A machine's kept choice: its kernels, why, when, later checks taken and clear wins against it since,
    and the version of the check (:data:`~lmtrain.kernels.probe.PROBE_VERSION`) that made or last reviewed it."""

    kernels: str
    why: str
    decided: str
    reviews: int = 0
    challenges: int = 0
    probe: int = PROBE_VERSION

    @property
    def settled(self) -> bool:
        """Whether later runs stop measuring: :data:`REVIEWS` checks found no reason to switch."""
        return self.reviews >= REVIEWS

    def describe(self) -> str:
        """``kept for this machine since 2026-12-06 (measured ...)``, for the log."""
        since = f"since {self.decided}" if self.decided else "by an earlier lmtrain"
        return f"kept for this machine {since} ({self.why})"


def review(kept: KeptChoice, verdict: Verdict, today: str) -> tuple[KeptChoice, str]:
    """What a later run's measurement ``verdict`` does to ``kept``: the choice to keep, and what happened in words.

    A tie or a clear win for the kept side confirms it (a win also clears earlier wins against it);
    :data:`SWITCH_AFTER` clear wins for the other side switch the choice, for the runs after this one.
    """
    check = f"check {kept.reviews + 1} of {REVIEWS}: {verdict.why}"
    if verdict.winner is None or verdict.winner == kept.kernels:
        challenges = kept.challenges if verdict.winner is None else 0
        return KeptChoice(kept.kernels, kept.why, kept.decided, kept.reviews + 1, challenges), f"{check}; it stays"
    challenges = kept.challenges + 1
    won = f"{check} (clear win {challenges} of the {SWITCH_AFTER} in separate runs that switch the choice)"
    if challenges < SWITCH_AFTER:
        return (
            KeptChoice(kept.kernels, kept.why, kept.decided, kept.reviews + 1, challenges),
            f"{won}; this run keeps {kept.kernels}",
        )
    switched = KeptChoice(
        verdict.winner, f"switched after {SWITCH_AFTER} clear wins in later runs, the last {verdict.why}", today
    )
    return switched, f"{won}: the choice switches to {verdict.winner} from the next run; this run keeps {kept.kernels}"
