"""Attention's math on CPU with the cheaper dropout mask of :mod:`lmtrain.kernels.cpu.dropout`.

With dropout on CPU, PyTorch runs `scaled_dot_product_attention`'s unfused math path and draws the
dropout mask with ``bernoulli_``; this runs the same math with the cheaper mask (a GPT mini step
spends ~7% of its time in that ``bernoulli_``, a padded MiniLM fine-tuning step ~5%).
"""

from __future__ import annotations

import torch

from lmtrain.kernels.cpu.dropout import cheap_dropout, keep_mask, kept_share


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
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    if is_causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)  # (Tq, Tk)
        scores = scores.masked_fill(future, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)  # (B, H, Tq, Tk)
    kept = kept_share(dropout)
    if kept is None:
        return cheap_dropout(weights, dropout) @ v
    # Dropout's 1 / kept scale goes on the values (B, H, Tk, Dh), a quarter of the weights' size at
    # Tk = 128, Dh = 32: one pass fewer over the weights forward and backward; the same math.
    return weights.mul(keep_mask(weights.shape, dropout, q.device)) @ v.mul(1.0 / kept)
