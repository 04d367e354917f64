"""Vocabulary projection and cross-entropy in one pass, chunk by chunk of rows.

The standard path, ``F.cross_entropy(F.linear(h, W, b).float(), t)``, keeps the (N, V) float32
logits alive for the backward pass; with a large vocabulary they are most of a language model's
activation memory. Here each chunk of rows computes its logits, loss and argmax, and, when
gradients are wanted, turns its logits into ``softmax - onehot`` at once and folds them into the
gradients of ``h``, ``W`` and ``b``. Only those gradients are kept for backward, which merely
scales them by the incoming gradient (the loss is a sum, so it is linear in that scalar).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.kernels import matmul_t, weight_gradient

CHUNK_ROWS = 512  # rows of logits alive at a time: (CHUNK_ROWS, V) float32


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``targets``, without (N, V) logits.

    Equal to ``F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="sum")``
    and its gradients, and to the argmax accuracy count. Under autocast the matmuls run in the
    autocast dtype as ``F.linear`` would; softmax and the loss are always at least float32.

    Args:
        hidden: (N, D) features before the vocabulary projection.
        weight: (V, D) projection weight (may be tied to the token embedding).
        bias: (V,) projection bias, or None.
        targets: (N,) class ids; rows whose target is ``IGNORE_INDEX`` count for nothing.
        chunk_rows: rows whose logits are computed at once.

    Returns:
        (loss_sum, correct): the scalar loss sum (float32, float64 for float64 inputs; differentiable)
        and the long scalar count of rows whose argmax logit is the target.
    """
    if torch.compiler.is_compiling():  # inductor fuses the plain path; the chunk loop would split the graph
        logits = F.linear(hidden, weight, bias).float()
        correct = (logits.argmax(-1) == targets).sum()  # an ignored target (-100) never equals an argmax
        return F.cross_entropy(logits, targets, reduction="sum", ignore_index=IGNORE_INDEX), correct
    device_type = hidden.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    inputs = (hidden, weight) if bias is None else (hidden, weight, bias)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows, dtype)
    loss_sum, correct, _ = _chunked(hidden, weight, bias, targets, chunk_rows, dtype, (False, False, False))
    return loss_sum, correct


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the gradients too; backward scales them by the loss's incoming gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_rows, dtype):
        with torch.autocast(hidden.device.type, enabled=False):  # _chunked casts to ``dtype`` itself
            loss_sum, correct, grads = _chunked(
                hidden, weight, bias, targets, chunk_rows, dtype, ctx.needs_input_grad[:3]
            )
        ctx.save_for_backward(*grads)
        ctx.applied = None  # the factor backward scaled the saved gradients by in place, if it did
        ctx.mark_non_differentiable(correct)
        return loss_sum, correct

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_correct):
        return *_scaled(ctx, grad_loss), None, None, None


def _scaled(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The saved gradients times ``grad_loss``: in place the first time on CPU, new tensors otherwise.

    In place, the (V, D) weight gradient becomes the parameter's gradient without another tensor of
    its size (on CPU each new one is fresh memory from the system). A later backward of a retained
    graph divides the factor applied first out again; a zero or non-finite first factor is not applied
    in place, so that division stays exact enough (float rounding).
    """
    grads = ctx.saved_tensors
    if ctx.applied is None and grad_loss.device.type == "cpu" and bool(torch.isfinite(grad_loss) & (grad_loss != 0)):
        ctx.applied = grad_loss.detach().clone()
        for g in grads:
            if g is not None:  # through .data: the saved version stays, so a retained graph unpacks them again
                g.data.mul_(grad_loss.to(g.dtype))
        return grads
    factor = grad_loss if ctx.applied is None else grad_loss / ctx.applied
    return tuple(None if g is None else g * factor.to(g.dtype) for g in grads)


def _chunked(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_rows: int,
    dtype: torch.dtype,
    needs: tuple[bool, ...],
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """Loss sum, correct count and the gradients ``needs`` asks for (hidden, weight, bias), in chunks.

    Matmuls run in ``dtype``; the gradients come back in each input's own dtype. The rows are split
    into chunks of equal size (at most ``chunk_rows``), so no small last chunk costs a full pass over
    the weight gradient.
    """
    float_dtype = torch.promote_types(dtype, torch.float32)
    h_all, w = hidden.to(dtype), weight.to(dtype)
    b = None if bias is None else bias.to(dtype)
    loss_sum = hidden.new_zeros((), dtype=float_dtype)
    correct = torch.zeros((), dtype=torch.long, device=hidden.device)
    grad_h = torch.empty_like(hidden) if needs[0] else None
    # weight and bias gradients are summed over chunks: at least float32 even under bf16 autocast
    grad_w_dtype = torch.promote_types(weight.dtype, torch.float32)
    grad_w: torch.Tensor | None = None  # the first chunk's product, then the sum
    # needs[2] is False without a bias (autograd asks no gradient of a None input)
    grad_b = None
    if bias is not None and needs[2]:
        grad_b = torch.zeros_like(bias, dtype=torch.promote_types(bias.dtype, torch.float32))
    n = hidden.shape[0]
    step = -(-n // -(-n // chunk_rows)) if n else 1  # ceil(n / number of chunks)
    # one buffer for every chunk's logits (each chunk is done with them before the next)
    buffer = torch.empty(min(step, n), weight.shape[0], dtype=dtype, device=hidden.device) if n else None
    for start in range(0, n, step):
        rows = slice(start, start + step)
        h = h_all[rows]  # (C, D)
        logits = matmul_t(h, w, b, out=buffer[: h.shape[0]] if buffer is not None else None).to(float_dtype)  # (C, V)
        chunk_loss, chunk_correct, grad_logits = _softmax_cross_entropy(logits, targets[rows], any(needs))
        loss_sum += chunk_loss
        correct += chunk_correct
        if grad_logits is None:
            continue
        if grad_b is not None:
            grad_b += grad_logits.sum(0)
        grad_logits = grad_logits.to(dtype)
        if grad_h is not None:
            grad_h[rows] = matmul_t(grad_logits, w.t())  # (C, V) @ (V, D)
        if needs[1]:
            grad_w = _add_weight_gradient(grad_w, grad_logits, h, grad_w_dtype)
    if needs[1] and grad_w is None:  # no rows
        grad_w = torch.zeros_like(weight, dtype=grad_w_dtype)
    grads = (grad_h, _cast(grad_w, weight), None if bias is None else _cast(grad_b, bias))
    return loss_sum, correct, grads


def _add_weight_gradient(
    grad_w: torch.Tensor | None, grad_logits: torch.Tensor, h: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``grad_w`` (V, D) plus ``grad_logits^T @ h``, in ``dtype``: the product itself when ``grad_w`` is None."""
    if grad_logits.dtype == dtype:  # accumulated by the product, without a temporary (V, D)
        return weight_gradient(grad_logits, h, grad_w)
    product = weight_gradient(grad_logits, h)
    return product.to(dtype) if grad_w is None else grad_w.add_(product)


def _softmax_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Loss sum, correct count and (if ``with_grad``) d loss_sum / d logits of one chunk.

    Overwrites ``logits`` (C, V), which then holds the gradient ``softmax - onehot``, zero on rows
    whose target (C,) is ignored.
    """
    keep = (targets != IGNORE_INDEX).unsqueeze(1)  # (C, 1)
    safe_targets = torch.where(keep, targets.unsqueeze(1), 0)  # (C, 1): a valid index on ignored rows too
    top, best = logits.max(1, keepdim=True)  # (C, 1) each
    correct = (best.squeeze(1) == targets).sum()  # an ignored target (-100) never equals an argmax
    target_logits = logits.gather(1, safe_targets)  # (C, 1)
    # one max pass, then exp in place: several times faster on CPU than logsumexp plus argmax
    exp = logits.sub_(top).exp_()  # (C, V)
    total = exp.sum(1, keepdim=True)  # (C, 1)
    loss_sum = torch.where(keep, top + total.log() - target_logits, 0.0).sum()
    if not with_grad:
        return loss_sum, correct, None
    softmax = exp.mul_(torch.where(keep, total.reciprocal(), 0.0))  # ignored rows become all zero
    return loss_sum, correct, softmax.scatter_add_(1, safe_targets, -keep.to(softmax.dtype))


def _cast(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """``grad`` in ``like``'s dtype and layout (a transposed product made contiguous; None stays None)."""
    return None if grad is None else grad.to(like.dtype).contiguous()
