"""The start-up check behind ``cpu_kernels=auto``: do lmtrain's CPU kernels run, and are they faster here?

One training-shaped linear layer with dropout (a mini model's feed-forward input projection),
forward and backward, timed alternately with lmtrain's kernels and with PyTorch's own ops (the order
flips every round, so a burst of load lands on both sides); up to :data:`ROUNDS` timings each, a
few tenths of a second at most. :mod:`lmtrain.kernels.decision` reads the timings. The global
random stream is left as it was, so the check changes no run's dropout masks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from lmtrain.kernels.cpu.dropout import cheap_dropout
from lmtrain.kernels.cpu.linear import onednn_linear, onednn_product

ROWS, IN_FEATURES, OUT_FEATURES = 512, 256, 1024  # batch 4 x 128 tokens into a d_model=256 feed-forward layer
ROUNDS = 8  # measured rounds at most, after one warm-up round
MIN_ROUNDS = 3  # measured rounds at least, whatever the budget
BUDGET_S = 0.3  # on a loaded machine fewer rounds: the check must stay well under a second
DROPOUT = 0.1


@dataclass(frozen=True)
class ProbeTimes:
    """Seconds of each timed forward + backward with each kernel set (warm-up excluded)."""

    onednn: tuple[float, ...]
    torch: tuple[float, ...]

    @property
    def onednn_s(self) -> float:
        """lmtrain's kernels' best time: the estimate least inflated by load."""
        return min(self.onednn)

    @property
    def torch_s(self) -> float:
        """PyTorch's ops' best time."""
        return min(self.torch)

    def describe(self) -> str:
        """``best of 8 each: 12.1 ms with oneDNN (median 12.4), 15.3 ms with torch (median 15.5)``, for the log."""
        return (f"best of {min(len(self.onednn), len(self.torch))} each: "
                f"{self.onednn_s * 1e3:.1f} ms with oneDNN (median {statistics.median(self.onednn) * 1e3:.1f}), "
                f"{self.torch_s * 1e3:.1f} ms with torch (median {statistics.median(self.torch) * 1e3:.1f})")


@contextmanager
def _plain_fp32_autograd() -> Iterator[None]:
    """Gradients on, no autocast: the check may run first inside a caller's `no_grad` or autocast block."""
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast("cpu", enabled=False):
        yield


def check_onednn_ops() -> None:
    """Run the oneDNN products once (forward, both backward products, a prepacked weight) against `F.linear`.

    Raises:
        RuntimeError: with the reason, when an op fails (a PyTorch build that changed or lacks it)
            or its result differs from `F.linear` beyond float rounding.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 24, generator=generator, requires_grad=True)
    weight = torch.randn(40, 24, generator=generator, requires_grad=True)
    with _plain_fp32_autograd():
        ours = onednn_linear(x, weight, None)
        ours.sum().backward()
    packed = onednn_product(x.detach(), torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 16), None)
    theirs = F.linear(x.detach(), weight.detach())
    expected_grads = (weight.detach().sum(0).expand(16, 24), x.detach().sum(0).expand(40, 24))
    pairs = [(ours.detach(), theirs), (packed, theirs), (x.grad, expected_grads[0]), (weight.grad, expected_grads[1])]
    if not all(torch.allclose(a, b, atol=1e-3, rtol=1e-4) for a, b in pairs):
        raise RuntimeError("oneDNN's linear product disagrees with F.linear")


def _layer_step(linear: Callable, dropout: Callable, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> float:
    """Seconds of one forward + backward of ``dropout(linear(x, weight, bias))``."""
    start = time.perf_counter()
    out = dropout(linear(x, weight, bias), DROPOUT)  # (ROWS, OUT_FEATURES)
    out.backward(torch.ones_like(out))
    return time.perf_counter() - start


def measure_alternately(steps: dict[str, Callable[[], float]], rounds: int = ROUNDS, min_rounds: int = MIN_ROUNDS,
                        budget_s: float = BUDGET_S, clock: Callable[[], float] = time.perf_counter
                        ) -> dict[str, list[float]]:
    """Each step's timings, taken in alternating order (A B, B A, A B, ...) after one warm-up round.

    Args:
        steps: name -> a function that runs one step and returns its seconds.
        rounds: measured rounds at most.
        min_rounds: measured rounds at least; after them, rounds stop once ``budget_s`` has passed.
        budget_s: seconds the measured rounds may take (by ``clock``).
        clock: seconds now (a fake clock in tests).
    """
    names = list(steps)
    for name in names:  # warm-up: allocator, oneDNN primitives
        steps[name]()
    timings: dict[str, list[float]] = {name: [] for name in names}
    started = clock()
    for round_index in range(rounds):
        if round_index >= min_rounds and clock() - started > budget_s:
            break
        for name in names if round_index % 2 == 0 else reversed(names):
            timings[name].append(steps[name]())
    return timings


def time_kernels() -> ProbeTimes:
    """Alternating timings of the probe layer with lmtrain's kernels and with PyTorch's ops."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, IN_FEATURES, generator=generator, requires_grad=True)
    weight = torch.randn(OUT_FEATURES, IN_FEATURES, generator=generator, requires_grad=True)
    bias = torch.randn(OUT_FEATURES, generator=generator, requires_grad=True)
    sets = {"onednn": (onednn_linear, cheap_dropout),
            "torch": (F.linear, lambda t, p: F.dropout(t, p, training=True))}
    steps = {name: (lambda linear=linear, dropout=dropout: _layer_step(linear, dropout, x, weight, bias))
             for name, (linear, dropout) in sets.items()}
    # Dropout draws here must not shift the run's random stream.
    with torch.random.fork_rng(devices=[]), _plain_fp32_autograd():
        timings = measure_alternately(steps)
    return ProbeTimes(onednn=tuple(timings["onednn"]), torch=tuple(timings["torch"]))


def cpu_has_wide_vectors() -> bool:
    """Whether this CPU has AVX-512 or AMX, where oneDNN's products are at their best."""
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        return True
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag.startswith(("avx512f", "amx")) for flag in flags.split())
