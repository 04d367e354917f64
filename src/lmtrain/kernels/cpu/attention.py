"""Attention's math on CPU with the cheaper dropout mask of :mod:`lmtrain.kernels.cpu.dropout`.

With dropout on CPU, PyTorch runs `scaled_dot_product_attention`'s unfused math path and draws the
dropout mask with ``bernoulli_``; this runs the same math with the cheaper mask (a GPT mini step
spends ~7% of its time in that ``bernoulli_``).
"""

from __future__ import annotations

import torch

from lmtrain.kernels.cpu.dropout import cheap_dropout


def fits_cpu_attention(q: torch.Tensor, mask: torch.Tensor | None, dropout: float) -> bool:
    """Whether :func:`attend_with_cheap_dropout` serves this call.

    Only with dropout, on CPU, outside `torch.compile`, and without a padding mask (causal LM
    batches, ALBEF's cross-attention), so no query row is ever fully masked; batches that carry an
    attention mask (every masked-LM batch) keep SDPA.
    """
    return dropout != 0.0 and mask is None and q.device.type == "cpu" and not torch.compiler.is_compiling()


def attend_with_cheap_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool,
                              dropout: float) -> torch.Tensor:
    """SDPA's math of (B, H, T, Dh) queries, keys and values, dropout on the weights by the cheaper mask."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    if is_causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)  # (Tq, Tk)
        scores = scores.masked_fill(future, float("-inf"))
    return cheap_dropout(scores.softmax(dim=-1), dropout) @ v
