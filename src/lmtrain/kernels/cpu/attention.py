"""Attention's math on CPU with the cheaper dropout mask of :mod:`lmtrain.kernels.cpu.dropout`.

With dropout on CPU, PyTorch runs `scaled_dot_product_attention`'s unfused math path and draws the
dropout mask with ``bernoulli_``; this runs the same math with the cheaper mask (a GPT mini step
spends ~7% of its time in that ``bernoulli_``, a padded MiniLM fine-tuning step ~5%).

In fp32 outside autocast the forward and backward passes are written out (:class:`_DropoutAttention`)
instead of left to autograd: the products run head by head on the strided views the attention
layers pass (a head of fused-QKV output is a strided (B, T, Dh) matrix that BLAS reads in place), so
no layout copy of queries, keys or values is made; the scale and the dropout's
1 / kept share ride in the products (``alpha``); masks are applied in place, and the masked scores'
gradient needs no pass of its own (their weights are 0). It keeps the weights and the keep factors
for the backward pass, where autograd kept the weights, the mask, the dropped weights and scaled
copies of queries and values. A BERT-mini layer (16 x 128, 4 heads, 2 threads), attention forward
and backward from the fused QKV output: 27-30 -> 25.5-26.5 ms.
Short sequences (at most :data:`ONE_CALL_SCORES` scores per matrix) copy queries, keys and values
head first instead and run each product as one call over every head and row.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lmtrain.kernels.cpu.dropout import cheap_dropout, keep_factors, keep_mask, kept_share


def fits_cpu_attention(q: torch.Tensor, mask: torch.Tensor | None, dropout: float) -> bool:
    """Whether :func:`attend_with_cheap_dropout` serves this call.

    Only with dropout, on CPU, outside `torch.compile`, and with no mask, a boolean key-padding mask
    (B, 1, 1, Tk) (padded fine-tuning batches) or a boolean (B, 1, Tq, Tk) mask (packed batches,
    padded causal batches); SDPA keeps every other mask (float masks, per-head masks).
    """
    if dropout == 0.0 or q.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    if mask is None:
        return True
    return mask.dtype == torch.bool and mask.dim() == 4 and mask.shape[1] == 1 and mask.shape[2] in (1, q.shape[2])


def attend_with_cheap_dropout(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool, dropout: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """SDPA's math of (B, H, T, Dh) queries, keys and values, dropout on the weights by the cheaper mask.

    ``mask`` (B, 1, 1, Tk) or (B, 1, Tq, Tk), True at the keys that may be attended, hides padding
    (and, packed, the other sentences). A query whose keys are all hidden attends to all of them
    alike instead of giving NaN (only an all-padding row can: lmtrain's (Tq, Tk) masks let every
    query see itself).
    """
    kept = kept_share(dropout)
    if kept is not None and _writes_its_own_gradients(q, k, v):
        return _DropoutAttention.apply(q, k, v, mask, is_causal, dropout, kept)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    _hide(scores, mask, is_causal)  # in place: the product's backward does not read its output
    weights = scores.softmax(dim=-1)  # (B, H, Tq, Tk)
    if kept is None:
        return cheap_dropout(weights, dropout) @ v
    # Dropout's 1 / kept scale goes on the values (B, H, Tk, Dh), a quarter of the weights' size at
    # Tk = 128, Dh = 32: one pass fewer over the weights forward and backward; the same math.
    return weights.mul(keep_mask(weights.shape, dropout, q.device)) @ v.mul(1.0 / kept)


def _writes_its_own_gradients(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether :class:`_DropoutAttention` serves these inputs: fp32 on CPU outside autocast."""
    return all(
        t.dtype == torch.float32 and t.device.type == "cpu" for t in (q, k, v)
    ) and not torch.is_autocast_enabled("cpu")


def _hide(scores: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> None:
    """Set the (..., Tq, Tk) ``scores`` of the keys a query may not see very low, in place (both paths use it).

    ``mask``: boolean, broadcastable to ``scores``, True where a key may be seen.
    """
    if is_causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)  # (Tq, Tk)
        scores.masked_fill_(future, float("-inf"))
    if mask is not None:
        scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)


# Up to this many scores per (head, row) matrix, one product over every head and row (after a layout copy of
# queries, keys and values) beats one product per head on the strided views: the per-call cost dominates
# short sentences' tiny products.
ONE_CALL_SCORES = 64 * 64


def _products(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float, one_call: bool) -> None:
    """``out = alpha * a @ b`` for (H, B, M, K) ``a`` and (H, B, K, N) ``b`` into the dense (H, B, M, N) ``out``:
    in one batched product over every head and row, or head by head on strided views."""
    H, B, M, N = out.shape
    if one_call:
        flat = out.view(H * B, M, N)
        torch.baddbmm(flat, a.reshape(H * B, M, -1), b.reshape(H * B, -1, N), beta=0.0, alpha=alpha, out=flat)
        return
    for h in range(H):
        torch.baddbmm(out[h], a[h], b[h], beta=0.0, alpha=alpha, out=out[h])


class _DropoutAttention(torch.autograd.Function):
    """Attention with dropout on its weights, forward and backward written out (see the module docstring).

    Inputs: (B, H, Tq, Dh) queries, (B, H, Tk, Dh) keys and values (views of any strides whose last
    dimension is dense), the boolean mask and causal flag of :func:`attend_with_cheap_dropout`, the
    drop probability and its kept share. Returns (B, H, Tq, Dh). Everything it computes is laid out
    head first, (H, B, ...): BLAS then writes each head's products into one dense block (a strided
    output makes PyTorch multiply matrix by matrix, about twice as slow here). Short sequences
    (at most :data:`ONE_CALL_SCORES` scores per matrix) copy queries, keys and values head first and
    multiply every head and row in one call.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, dropout, kept):
        B, H, Tq, Dh = q.shape
        one_call = Tq * k.shape[2] <= ONE_CALL_SCORES
        scale, rescale = Dh**-0.5, 1.0 / kept
        # (H, B, T, Dh): each head's (B, T, Dh) slices read in place, or copied for one call
        qt, kt, vt = (t.transpose(0, 1).contiguous() if one_call else t.transpose(0, 1) for t in (q, k, v))
        scores = q.new_empty(H, B, Tq, k.shape[2])
        _products(scores, qt, kt.transpose(2, 3), scale, one_call)
        _hide(scores, None if mask is None else mask.transpose(0, 1), is_causal)
        weights = scores.softmax(dim=-1)
        # drawn in (B, H) order, as the composed ops draw it; 1 kept, 0 dropped (1 / kept rides in alpha)
        factors = keep_factors(torch.Size((B, H, *weights.shape[2:])), dropout, q.device).transpose(0, 1)
        dropped = torch.mul(weights, factors, out=scores)  # the scores' memory, already mapped
        out = q.new_empty(H, B, Tq, Dh)
        _products(out, dropped, vt, rescale, one_call)
        ctx.save_for_backward(qt, kt, vt, weights, factors)
        ctx.scales = (scale, rescale)
        ctx.one_call = one_call
        return out.transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        qt, kt, vt, weights, factors = ctx.saved_tensors
        scale, rescale = ctx.scales
        one_call = ctx.one_call
        gt = grad.transpose(0, 1).contiguous() if one_call else grad.transpose(0, 1)  # (H, B, Tq, Dh)
        grad_q, grad_k, grad_v = (t.new_empty(t.shape) for t in (qt, kt, vt))
        grad_weights = torch.empty_like(weights)
        _products(grad_weights, gt, vt.transpose(2, 3), rescale, one_call)
        grad_weights.mul_(factors)
        dropped = torch.mul(weights, factors)
        _products(grad_v, dropped.transpose(2, 3), gt, rescale, one_call)
        # softmax's backward, into the dropped weights' memory; a hidden score's weight is 0, so its gradient
        # is 0 with no masking pass
        grad_scores = torch.ops.aten._softmax_backward_data.out(
            grad_weights, weights, -1, weights.dtype, grad_input=dropped
        )
        del grad_weights
        _products(grad_q, grad_scores, kt, scale, one_call)
        _products(grad_k, grad_scores.transpose(2, 3), qt, scale, one_call)
        return grad_q.transpose(0, 1), grad_k.transpose(0, 1), grad_v.transpose(0, 1), None, None, None, None
