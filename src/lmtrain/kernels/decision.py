"""What ``cpu_kernels=auto`` makes of the start-up check's timings: a clear win, or a tie settled by a rule.

Each kernel set's best time is the estimate least inflated by load; its median shows how much load
there was. A win is clear when the faster set's best time beats the slower's by more than
:data:`NOISE` and even the faster's median beats the slower's best (the spreads from best to median
do not overlap). Anything less is a tie, and a tie is decided by a stated rule rather than by the
noise: lmtrain's oneDNN kernels where the CPU has AVX-512 or AMX, else PyTorch's ops.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from lmtrain.kernels.probe import ProbeTimes

NOISE = 0.05  # best times closer than this are a tie
RULE = "oneDNN where the CPU has AVX-512 or AMX, else torch"
_LABELS = {"onednn": "oneDNN", "torch": "torch"}


@dataclass(frozen=True)
class Decision:
    """The kernels ``auto`` takes, whether the timings showed a clear win, and why in words."""

    kernels: str
    clear_win: bool
    why: str


def decide(times: ProbeTimes, wide_vectors: bool) -> Decision:
    """The kernels the timings ``times`` call for.

    Args:
        times: the start-up check's timings of both kernel sets.
        wide_vectors: whether this CPU has AVX-512 or AMX (the rule for a tie).
    """
    samples = {"onednn": times.onednn, "torch": times.torch}
    faster, slower = sorted(samples, key=lambda name: min(samples[name]))
    best_faster, best_slower = min(samples[faster]), min(samples[slower])
    beyond_noise = best_slower > best_faster * (1 + NOISE)
    spreads_apart = statistics.median(samples[faster]) < best_slower
    if beyond_noise and spreads_apart:
        return Decision(faster, True, f"{times.describe()}: {_LABELS[faster]} clearly faster")
    reason = "spreads overlap" if beyond_noise else f"best times within {NOISE:.0%}"
    kernels = "onednn" if wide_vectors else "torch"
    cpu = "has" if wide_vectors else "lacks"
    return Decision(kernels, False, f"{times.describe()}: a tie ({reason}), so by rule {RULE} (this CPU {cpu} them)")
