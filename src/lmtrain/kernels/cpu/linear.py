"""Linear products on oneDNN for fp32 on CPU, forwards and backwards.

PyTorch computes fp32 `F.linear` on CPU with its BLAS (MKL in the x86 wheels) and reaches oneDNN
only for bf16. Where MKL does not pick its best kernels (AMD EPYC CPUs with AVX-512, such as
the machine the README's benchmark ran on), oneDNN's fp32 GEMM is about twice as fast for
training-sized products. :func:`onednn_linear` sends those products, and the two products of its
backward pass, to oneDNN's linear primitive; results agree with `F.linear` to float rounding.

:func:`fits_onednn` says where that path applies: on CPU, fp32, at least :data:`MIN_ROWS` rows,
outside autocast (bf16 already runs on oneDNN) and outside `torch.compile` (inductor lowers linear
layers itself). Whether it is used at all is the switch's business (:mod:`lmtrain.kernels.select`).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

MIN_ROWS = 8  # measured: oneDNN's call overhead loses at 1 row and wins from 8 rows on


def onednn_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN's linear primitive, no autograd; ``weight`` may be prepacked.

    The caller checks that oneDNN can run it (see :func:`fits_onednn`). Strided views are read
    in place, except a transposed ``x``, which oneDNN copies first.
    """
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def onednn_weight_gradient(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad.T @ x`` (out, in) of 2-D ``grad`` (N, out) and ``x`` (N, in) by oneDNN; may be a transposed view.

    oneDNN copies its first operand when it is a transposed view, so this transposes the narrower of
    the two: ``x^T`` when in < out (then it computes ``(x^T grad)^T``). Rows that are not dense
    (``hidden[:, 0]``, the pooled first token) are made dense first: oneDNN takes ~14 ms on such a
    transposed (256, 16) operand and 0.08 ms on a dense one.
    """
    grad, x = grad.contiguous(), x.contiguous()  # no copy when already dense
    if x.shape[1] < grad.shape[1]:
        return onednn_product(x.t(), grad.t(), None).t()
    return onednn_product(grad.t(), x.t(), None)


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b with all three products (y, dL/dx, dL/dW) computed by oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])  # (N, in)
        ctx.input_shape = x.shape
        ctx.has_bias = bias is not None
        ctx.save_for_backward(rows if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        return onednn_product(rows, weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @once_differentiable  # the oneDNN products have no derivatives of their own
    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        grad_rows = grad.reshape(-1, grad.shape[-1])  # (N, out)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = onednn_product(grad_rows, weight.t(), None).view(ctx.input_shape)  # dL/dy W
        if ctx.needs_input_grad[1]:
            grad_weight = onednn_weight_gradient(grad_rows, rows)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias


def onednn_ops_present() -> bool:
    """Whether this PyTorch build has oneDNN switched on and the private ops used here."""
    # ``enabled`` reads as a bool; torch's stubs type the attribute as the property object behind it
    return (
        torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


def fits_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight.T`` is a product the oneDNN path serves (see the module docstring)."""
    if torch.compiler.is_compiling():  # first: Dynamo cannot trace the checks below (graph breaks)
        return False
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() >= 2
        and x.numel() >= MIN_ROWS * x.shape[-1]
        and not torch.is_autocast_enabled("cpu")
    )


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` like `torch.nn.functional.linear`, every product on oneDNN.

    The caller checks :func:`fits_onednn`. Gradients are first-order only (no double backward).
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _OneDNNLinear.apply(x, weight, bias)
    rows = onednn_product(x.reshape(-1, x.shape[-1]), weight, bias)  # inference: no autograd node
    return rows.view(*x.shape[:-1], weight.shape[0])
