"""The start-up check behind ``cpu_kernels=auto``: do lmtrain's CPU kernels run, and are they faster here?

One training-shaped linear layer with dropout (a mini model's feed-forward input projection),
forward and backward, timed alternately with lmtrain's kernels and with PyTorch's own ops; the
best of a few rounds each, about a tenth of a second on a 2-core VM. The global random stream is
left as it was, so the check changes no run's dropout masks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from lmtrain.kernels.cpu.dropout import cheap_dropout
from lmtrain.kernels.cpu.linear import onednn_linear, onednn_product

ROWS, IN_FEATURES, OUT_FEATURES = 512, 256, 1024  # batch 4 x 128 tokens into a d_model=256 feed-forward layer
ROUNDS = 4
BUDGET_S = 0.3  # on a loaded machine fewer rounds: the check must stay well under a second
DROPOUT = 0.1


@dataclass(frozen=True)
class ProbeTimes:
    """Best seconds of one forward + backward with each kernel set."""

    onednn_s: float
    torch_s: float

    @property
    def onednn_faster(self) -> bool:
        """Whether lmtrain's CPU kernels beat PyTorch's ops on this machine."""
        return self.onednn_s < self.torch_s

    def describe(self) -> str:
        """``12.1 ms with oneDNN, 15.3 ms with torch``: the two times, for the log."""
        return f"{self.onednn_s * 1e3:.1f} ms with oneDNN, {self.torch_s * 1e3:.1f} ms with torch"


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


def time_kernels() -> ProbeTimes:
    """Best-of-:data:`ROUNDS` seconds of the probe layer with lmtrain's kernels and with PyTorch's ops.

    After the warm-up round and two measured ones, rounds stop once :data:`BUDGET_S` has passed.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, IN_FEATURES, generator=generator, requires_grad=True)
    weight = torch.randn(OUT_FEATURES, IN_FEATURES, generator=generator, requires_grad=True)
    bias = torch.randn(OUT_FEATURES, generator=generator, requires_grad=True)
    sets = {"onednn": (onednn_linear, cheap_dropout),
            "torch": (F.linear, lambda t, p: F.dropout(t, p, training=True))}
    best = {name: float("inf") for name in sets}
    # Dropout draws here must not shift the run's random stream.
    with torch.random.fork_rng(devices=[]), _plain_fp32_autograd():
        started = time.perf_counter()  # reset after the warm-up round
        for round_index in range(ROUNDS + 1):  # round 0 warms up both (allocator, oneDNN primitives)
            if round_index == 1:
                started = time.perf_counter()
            elif round_index > 2 and time.perf_counter() - started > BUDGET_S:
                break
            for name, (linear, dropout) in sets.items():
                seconds = _layer_step(linear, dropout, x, weight, bias)
                if round_index:
                    best[name] = min(best[name], seconds)
    return ProbeTimes(onednn_s=best["onednn"], torch_s=best["torch"])
