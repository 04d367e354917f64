"""The start-up check behind ``cpu_kernels=auto``: do lmtrain's CPU kernels run, and how fast is each set here?

One training-shaped linear layer with dropout (a mini model's feed-forward input projection),
forward and backward, timed alternately with lmtrain's kernels and with PyTorch's own ops (the
order flips every round, so a burst of load lands on both sides); each side's best time is the
estimate least inflated by load. A few tenths of a second at most. The global random stream is
left as it was, so the check changes no run's dropout masks.
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

from lmtrain.kernels.cpu.dropout import cheap_dropout
from lmtrain.kernels.cpu.linear import onednn_linear, onednn_product

ROWS, IN_FEATURES, OUT_FEATURES = 512, 256, 1024  # batch 4 x 128 tokens into a d_model=256 feed-forward layer
ROUNDS = 8  # measured rounds at most, after one warm-up round
MIN_ROUNDS = 3  # measured rounds at least, whatever the budget
BUDGET_S = 0.3  # on a loaded machine fewer rounds: the check must stay well under a second
DROPOUT = 0.1


@dataclass(frozen=True)
class ProbeTimes:
    """Each kernel set's best seconds of one forward + backward, and how many timings each took."""

    onednn_s: float
    torch_s: float
    rounds: int = 1

    def describe(self) -> str:
        """``12.1 ms with oneDNN vs 15.3 ms with torch (best of 8 each)``: the two times, for the log."""
        return (
            f"{self.onednn_s * 1e3:.1f} ms with oneDNN vs {self.torch_s * 1e3:.1f} ms with torch "
            f"(best of {self.rounds} each)"
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


def _layer_step(
    linear: Callable, dropout: Callable, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> float:
    """Seconds of one forward + backward of ``dropout(linear(x, weight, bias))``."""
    start = time.perf_counter()
    out = dropout(linear(x, weight, bias), DROPOUT)  # (ROWS, OUT_FEATURES)
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


def time_kernels() -> ProbeTimes:
    """Each side's best time of the probe layer, timed alternately with lmtrain's kernels and PyTorch's ops."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, IN_FEATURES, generator=generator, requires_grad=True)
    weight = torch.randn(OUT_FEATURES, IN_FEATURES, generator=generator, requires_grad=True)
    bias = torch.randn(OUT_FEATURES, generator=generator, requires_grad=True)
    sets = {"onednn": (onednn_linear, cheap_dropout), "torch": (F.linear, lambda t, p: F.dropout(t, p, training=True))}
    steps: dict[str, Callable[[], float]] = {
        name: functools.partial(_layer_step, linear, dropout, x, weight, bias)
        for name, (linear, dropout) in sets.items()
    }
    # Dropout draws here must not shift the run's random stream.
    with torch.random.fork_rng(devices=[]), _plain_fp32_autograd():
        timings = measure_alternately(steps)
    return ProbeTimes(onednn_s=min(timings["onednn"]), torch_s=min(timings["torch"]), rounds=len(timings["torch"]))


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
