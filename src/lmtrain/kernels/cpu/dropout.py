"""Dropout with a cheaper random mask on CPU.

`torch.nn.functional.dropout` on CPU draws one 32-bit random number per element through
`bernoulli_`, which costs more than the rest of dropout together. Here one 64-bit draw makes
the keep/drop decision of four elements (16 random bits each), so a mask costs a quarter of the
draws; the mask is kept as booleans for the backward pass, as PyTorch's own dropout keeps it.
The drop probability is rounded to a multiple of 1/65536 (0.1 becomes 0.100006) and the scale
uses that rounded value, so every element's expectation is unchanged. On other devices PyTorch's
fused dropout kernels are used as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LEVELS = 1 << 16  # 16 random bits per element


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A boolean tensor of ``shape``, each element True with probability ``1 - p`` (p rounded to 1/65536).

    Drawn from the default generator of ``device``, so `torch.manual_seed` and saved RNG states
    reproduce it.
    """
    n = shape.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    bits = words.view(torch.int16)[:n]  # uniform over [-32768, 32767]
    threshold = round(p * _LEVELS) - _LEVELS // 2
    return (bits >= threshold).view(shape)


def kept_share(p: float) -> float | None:
    """The share of elements :func:`cheap_dropout` keeps at probability ``p`` (1 - p rounded to 1/65536), or
    None where it takes another path (``p`` rounds to 0: nothing dropped; or to 1: PyTorch's dropout)."""
    dropped = round(p * _LEVELS)
    return None if dropped == 0 or dropped >= _LEVELS else 1.0 - dropped / _LEVELS


def cheap_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of ``x`` with probability ``p``: the cheaper mask on CPU, `F.dropout` elsewhere.

    Zeroes each element with probability ``p`` (rounded to 1/65536) and scales the rest by 1 / (1 - p).
    """
    dropped = round(p * _LEVELS)  # of 65536 levels
    # Dynamo cannot trace random_ (inductor fuses its own dropout), and a p that rounds up to 1
    # leaves no kept level to scale by: both take PyTorch's dropout.
    if x.device.type != "cpu" or dropped >= _LEVELS or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    if dropped == 0:  # p below 1/131072 rounds to no dropout at all
        return x
    kept = 1.0 - dropped / _LEVELS
    # Autograd keeps only the boolean mask for the backward pass; the scalar scale needs nothing.
    return x.mul(keep_mask(x.shape, p, x.device)).mul_(1.0 / kept)
