"""The start-up check behind ``cpu_kernels=auto``: do oneDNN's products run, and are they faster than PyTorch's here?

``auto`` chooses between ``onednn`` and ``torch-matmul``, which share lmtrain's dropout, so only the
linear products are timed: a feed-forward block (d_model 384 -> 1536 -> 384, as in MiniLM),
forward and backward, so both the input-gradient and the weight-gradient products count (oneDNN's
weight-gradient products are what loses on Intel CPUs whose MKL runs its best kernels). Two row
counts: a pretraining batch (8 x 128 tokens) and a short fine-tuning batch (400 tokens). Each is
timed alternately with oneDNN's products and with `F.linear` (the order flips every round, so a
burst of load lands on both sides); each side's time is the sum of its best time per row count,
the estimate least inflated by load. About a second on two cores, less with more; a process that
trains nothing (``generate``, ``evaluate``, ``predict``) times the forward products only, a third of that.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lmtrain.kernels.cpu.linear import onednn_linear, onednn_product

PROBE_VERSION = 2  # what the check times; 1 (unstored) timed one small layer's products with each side's dropout
ROWS = (1024, 400)  # a pretraining batch (8 x 128 tokens) and a short fine-tuning batch
D_MODEL, D_FF = 384, 1536  # MiniLM's feed-forward block
ROUNDS = 8  # measured rounds at most, after one warm-up round
MIN_ROUNDS = 3  # measured rounds at least, whatever the budget
BUDGET_S = 0.5  # on a loaded machine fewer rounds: the check must stay near a second


@dataclass(frozen=True)
class ProbeTimes:
    """Each kernel set's seconds of the probe's products (forward + backward), and how many timings each took."""

    onednn_s: float
    matmul_s: float
    rounds: int = 1
    backward: bool = True  # False: the forward products only

    def describe(self) -> str:
        """``12.1 ms with oneDNN vs 15.3 ms with torch-matmul (..., best of 8 each)``: the two times, for the log."""
        rows = " and ".join(str(rows) for rows in ROWS)
        timed = "forward and backward" if self.backward else "forward only"
        return (
            f"{self.onednn_s * 1e3:.1f} ms with oneDNN vs {self.matmul_s * 1e3:.1f} ms with torch-matmul "
            f"(linear products {timed}, {rows} rows, best of {self.rounds} each)"
        )


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
    if x.grad is None or weight.grad is None:
        raise RuntimeError("oneDNN's linear product gave no gradients")
    pairs = [(ours.detach(), theirs), (packed, theirs), (x.grad, expected_grads[0]), (weight.grad, expected_grads[1])]
    if not all(torch.allclose(a, b, atol=1e-3, rtol=1e-4) for a, b in pairs):
        raise RuntimeError("oneDNN's linear product disagrees with F.linear")


def _block_step(linear: Callable, x: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> float:
    """Seconds of one forward (+ backward where ``x`` needs gradients) of ``linear(linear(x, up), down)``.

    Two products forward; backward four more: the input and the weight gradient of each layer.
    """
    start = time.perf_counter()
    out = linear(linear(x, up, None), down, None)  # (rows, D_MODEL)
    if out.requires_grad:
        out.backward(torch.ones_like(out))
    return time.perf_counter() - start


def measure_alternately(
    steps: dict[str, Callable[[], float]],
    rounds: int = ROUNDS,
    min_rounds: int = MIN_ROUNDS,
    budget_s: float = BUDGET_S,
    clock: Callable[[], float] = time.perf_counter,
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


def time_kernels(backward: bool = True) -> ProbeTimes:
    """Each side's time of the probe's products: per row count its best, summed; timed alternately.

    Args:
        backward: time the backward products too (a training run); False: the forward ones only.
    """
    generator = torch.Generator().manual_seed(0)
    up = torch.randn(D_FF, D_MODEL, generator=generator).mul_(D_MODEL**-0.5).requires_grad_(backward)
    down = torch.randn(D_MODEL, D_FF, generator=generator).mul_(D_FF**-0.5).requires_grad_(backward)
    steps: dict[str, Callable[[], float]] = {}
    for rows in ROWS:
        x = torch.randn(rows, D_MODEL, generator=generator, requires_grad=backward)
        for name, linear in (("onednn", onednn_linear), ("torch-matmul", F.linear)):
            steps[f"{name} {rows}"] = functools.partial(_block_step, linear, x, up, down)
    with _plain_fp32_autograd():
        timings = measure_alternately(steps)
    best = {name: min(seconds) for name, seconds in timings.items()}
    return ProbeTimes(
        onednn_s=sum(best[f"onednn {rows}"] for rows in ROWS),
        matmul_s=sum(best[f"torch-matmul {rows}"] for rows in ROWS),
        rounds=len(timings[f"onednn {ROWS[0]}"]),
        backward=backward,
    )


def cpu_flags() -> set[str]:
    """This CPU's feature flags from /proc/cpuinfo (``flags`` on x86, ``Features`` on ARM); empty elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return set()
    line = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


def cpu_has_wide_vectors() -> bool:
    """Whether this CPU has AVX-512 or AMX, where oneDNN's products are at their best."""
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        return True
    return any(flag.startswith(("avx512f", "amx")) for flag in cpu_flags())
