"""Linear layers whose fp32 matrix products on CPU run on oneDNN, forwards and backwards.

PyTorch computes fp32 `F.linear` on CPU with its BLAS (MKL in the x86 wheels) and reaches oneDNN
only for bf16. Where MKL does not pick its best kernels (AMD EPYC CPUs with AVX-512, such as
the machine the README's benchmark ran on), oneDNN's fp32 GEMM is about twice as fast for
training-sized products. :func:`linear` sends those products, and the two products of its
backward pass, to oneDNN's linear primitive; results agree with `F.linear` to float rounding.

It falls back to `F.linear` wherever that is the better or only choice: off CPU, under autocast
(bf16 already runs on oneDNN), in other dtypes, inside `torch.compile` (inductor lowers linear
layers itself), for a handful of rows (decoding: see :mod:`lmtrain.models.prepacked`), and when
oneDNN is switched off (`torch.backends.mkldnn.enabled = False`) or absent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

MIN_ROWS = 8  # measured: oneDNN's call overhead loses at 1 row and wins from 8 rows on


def onednn_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN's linear primitive, no autograd; ``weight`` may be prepacked.

    The caller checks that oneDNN can run it (see :func:`uses_onednn`). Strided views are read
    in place, except a transposed ``x``, which oneDNN copies first.
    """
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b with all three products (y, dL/dx, dL/dW) computed by oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])  # (N, in)
        ctx.input_shape = x.shape
        ctx.has_bias = bias is not None
        ctx.save_for_backward(rows if ctx.needs_input_grad[1] else None,
                              weight if ctx.needs_input_grad[0] else None)
        return onednn_product(rows, weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @once_differentiable  # the oneDNN products have no derivatives of their own
    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        grad_rows = grad.reshape(-1, grad.shape[-1])  # (N, out)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = onednn_product(grad_rows, weight.t(), None).view(ctx.input_shape)  # dL/dy W
        if ctx.needs_input_grad[1]:  # (dL/dy)^T x: (out, in)
            # oneDNN copies its first operand when it is a transposed view, so transpose the
            # narrower of the two: x^T when in < out (then compute (x^T dL/dy)^T).
            if rows.shape[1] < grad_rows.shape[1]:
                grad_weight = onednn_product(rows.t(), grad_rows.t(), None).t()
            else:
                grad_weight = onednn_product(grad_rows.t(), rows.t(), None)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias


def onednn_enabled() -> bool:
    """Whether oneDNN is built in and switched on (`torch.backends.mkldnn.enabled`)."""
    return torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled


def uses_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` runs ``x`` through oneDNN (see the module docstring for when)."""
    if torch.compiler.is_compiling():  # first: Dynamo cannot trace the checks below (graph breaks)
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() >= 2 and x.numel() >= MIN_ROWS * x.shape[-1]
            and onednn_enabled() and not torch.is_autocast_enabled("cpu"))


def matmul_t(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` for 2-D ``x``, on oneDNN where :func:`uses_onednn` allows.

    Not differentiable on the oneDNN path: it is for code that computes its own gradients (inside
    an autograd function) or runs without them. Strided views (``a.t()``) are read in place.
    """
    if uses_onednn(x, weight):
        return onednn_product(x, weight, bias)
    return F.linear(x, weight, bias)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` like `torch.nn.functional.linear`, on oneDNN where that is faster.

    On the oneDNN path gradients are first-order only (no double backward).
    """
    if not uses_onednn(x, weight):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _OneDNNLinear.apply(x, weight, bias)
    rows = onednn_product(x.reshape(-1, x.shape[-1]), weight, bias)  # inference: no autograd node
    return rows.view(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """`torch.nn.Linear` computed by :func:`linear`; same parameters, names and initialisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features)."""
        return linear(x, self.weight, self.bias)
