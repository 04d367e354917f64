"""The kernels models call: lmtrain's CPU kernels where they are selected and apply, PyTorch's ops otherwise.

Each function checks its part of the switch (:func:`lmtrain.kernels.select.use_onednn_products` for
the linear products, :func:`~lmtrain.kernels.select.use_cheap_dropout` for dropout and attention)
and whether its fast path serves the call (CPU, fp32, no autocast, not inside `torch.compile`);
everything else goes to the plain PyTorch op, so GPU runs, bf16 autocast and compiled steps are
PyTorch's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.kernels.cpu.attention import attend_with_cheap_dropout, fits_cpu_attention
from lmtrain.kernels.cpu.dropout import cheap_dropout
from lmtrain.kernels.cpu.linear import fits_onednn, onednn_linear, onednn_product, onednn_weight_gradient
from lmtrain.kernels.cpu.prepacked import PrepackedLinears
from lmtrain.kernels.select import use_cheap_dropout, use_onednn_products


def _onednn_serves(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # fits_onednn first: it stops at torch.compile before anything Dynamo cannot trace.
    return fits_onednn(x, weight) and use_onednn_products()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` like `torch.nn.functional.linear`, on oneDNN where selected and it applies.

    On the oneDNN path gradients are first-order only (no double backward).
    """
    if _onednn_serves(x, weight):
        return onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def matmul_t(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ weight.T + bias`` for 2-D ``x``, on oneDNN where selected and it applies.

    Not differentiable on the oneDNN path: it is for code that computes its own gradients (inside
    an autograd function) or runs without them. Strided views (``a.t()``) are read in place.
    ``out`` (contiguous, of the result's shape and dtype): PyTorch's product writes the result there
    (a buffer reused across calls costs no fresh memory); oneDNN's returns a new tensor.
    """
    if _onednn_serves(x, weight):
        return onednn_product(x, weight, bias)
    if out is None:
        return F.linear(x, weight, bias)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def weight_gradient(grad: torch.Tensor, x: torch.Tensor, accumulate: torch.Tensor | None = None) -> torch.Tensor:
    """``grad.T @ x``: a linear layer's weight gradient (out, in) from 2-D ``grad`` (N, out) and ``x`` (N, in).

    Added in place into ``accumulate`` (out, in) when given, and returned; otherwise a new tensor, which
    may be a transposed view. Not differentiable. PyTorch's product reads both transposes in place
    and accumulates into ``accumulate`` itself (no temporary of its size); on oneDNN, where selected and
    it applies, :func:`~lmtrain.kernels.cpu.linear.onednn_weight_gradient` and an add.
    """
    if _onednn_serves(x, grad):
        product = onednn_weight_gradient(grad, x)
        return product if accumulate is None else accumulate.add_(product)
    if accumulate is None:
        return grad.t().mm(x)
    return accumulate.addmm_(grad.t(), x)


class Linear(nn.Linear):
    """`torch.nn.Linear` computed by :func:`linear`; same parameters, names and initialisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features)."""
        return linear(x, self.weight, self.bias)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` and scale the rest by 1 / (1 - p), in training.

    Outside training, or with ``p == 0``, returns ``x`` itself. With lmtrain's CPU kernels (``onednn``,
    ``torch-matmul``) the mask is the cheaper one of :mod:`lmtrain.kernels.cpu.dropout` (``p`` rounded to 1/65536).
    """
    if not training or p == 0.0:
        return x
    if x.device.type == "cpu" and use_cheap_dropout():
        return cheap_dropout(x, p)
    return F.dropout(x, p, training=True)


class Dropout(nn.Dropout):
    """`torch.nn.Dropout` computed by :func:`dropout`; same argument checks and repr."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with dropout applied in training mode, unchanged in eval mode."""
        return dropout(x, self.p, self.training)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool, dropout: float
) -> torch.Tensor:
    """`scaled_dot_product_attention` of (B, H, T, Dh) queries, keys and values.

    With lmtrain's cheaper dropout selected (``onednn``, ``torch-matmul``), dropout on CPU and a mask
    :mod:`lmtrain.kernels.cpu.attention` serves, the same math runs with the cheaper dropout mask;
    otherwise SDPA itself.
    """
    if fits_cpu_attention(q, mask, dropout) and use_cheap_dropout():
        return attend_with_cheap_dropout(q, k, v, is_causal, dropout, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)


def prepacked_linears(model: nn.Module, rows_hint: int, projection_types: tuple[type, ...] = ()) -> PrepackedLinears:
    """A model's linear weights prepacked for decoding when oneDNN's products are selected (``onednn``).

    Args: as for :class:`~lmtrain.kernels.cpu.prepacked.PrepackedLinears`. With PyTorch's products
    selected (``torch-matmul``, ``torch``) its ``applied()`` block leaves every forward as it is.
    """
    enabled = next(model.parameters(), torch.empty(0)).device.type == "cpu" and use_onednn_products()
    return PrepackedLinears(model, rows_hint, projection_types, enabled=enabled)
