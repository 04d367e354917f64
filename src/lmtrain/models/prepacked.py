"""Inference on CPU with linear-layer weights reordered once into oneDNN's blocked layout.

A decoding step multiplies a handful of rows by every weight matrix, so it is bound by reading
the weights. `torch.nn.functional.linear` reads them in their row-major training layout; oneDNN
reads a copy blocked for its kernels (the layout `torch.compile` uses for frozen CPU weights)
about twice as fast at batch 8, and no slower at batch 1. Greedy decoding picks the same
tokens; logits agree with `F.linear` to float rounding (~1e-4).

The copy costs one weight matrix per layer while it exists, so it is made for one generation or
prediction pass (a few milliseconds) and dropped at the end of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lmtrain.models.heads import CausalLMHead

_PACKABLE_DTYPES = (torch.float32, torch.bfloat16)


def can_prepack(model: nn.Module) -> bool:
    """Whether ``model``'s linear layers can run prepacked here: CPU, oneDNN present, no gradients."""
    weight = next(model.parameters(), None)
    return (weight is not None and weight.device.type == "cpu" and weight.dtype in _PACKABLE_DTYPES
            and torch.backends.mkldnn.is_available() and not torch.is_grad_enabled() and not model.training)


def _projections(model: nn.Module) -> Iterator[tuple[nn.Module, torch.Tensor, torch.Tensor | None]]:
    """Every module of ``model`` that is a plain linear projection, with its weight and bias."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            yield module, module.weight, module.bias
        elif isinstance(module, CausalLMHead):
            yield module, module.weight, None


def _packed_forward(packed: torch.Tensor, bias: torch.Tensor | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    return forward


@contextmanager
def prepacked_linears(model: nn.Module, rows_hint: int) -> Iterator[bool]:
    """Within the block, ``model``'s linear projections run on oneDNN with prepacked weights.

    Only on CPU, in eval mode under `torch.no_grad()`; elsewhere (or where oneDNN refuses the
    weights) the block runs the model unchanged. Yields whether the weights were packed.

    Args:
        model: the module whose `nn.Linear` layers (and causal LM head) to pack.
        rows_hint: the usual number of input rows per call (e.g. the decoding batch size); only
            a tuning hint, any number of rows works.
    """
    patched: list[nn.Module] = []
    try:
        if can_prepack(model):
            try:
                for module, weight, bias in _projections(model):
                    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), max(rows_hint, 1))
                    module.forward = _packed_forward(packed, None if bias is None else bias.detach())
                    patched.append(module)
            except (RuntimeError, AttributeError, NotImplementedError):  # an op or dtype this build lacks
                for module in patched:
                    del module.forward
                patched.clear()
        yield bool(patched)
    finally:
        for module in patched:
            del module.forward
