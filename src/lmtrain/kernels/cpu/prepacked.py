"""Inference on CPU with linear-layer weights reordered once into oneDNN's blocked layout.

A decoding step multiplies a handful of rows by every weight matrix, so it is bound by reading
the weights. `torch.nn.functional.linear` reads them in their row-major training layout; oneDNN
reads a copy blocked for its kernels (the layout `torch.compile` uses for frozen CPU weights)
faster: in `scripts/bench.py` decoding went from 0.99x to 2.16x of `transformers`' speed at
batch 1 (small) and from 1.38x to 3.08x at batch 8. Greedy decoding picks the same
tokens; logits agree with `F.linear` to float rounding (~1e-4).

The copy costs one more copy of each linear weight. It is kept with its module (weakly: it goes
when the module goes) until the weight changes in place, so repeated generation calls pack once;
packing costs milliseconds, up to a tenth of a 128-token decode at batch 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from weakref import WeakKeyDictionary

import torch
from torch import nn

from lmtrain.kernels.cpu.linear import onednn_product

_PACKABLE_DTYPES = (torch.float32, torch.bfloat16)
# module -> ((weight id, weight version, bias version, rows hint), packed forward)
_PACKED: WeakKeyDictionary[nn.Module, tuple[tuple[int, int, int, int], Callable]] = WeakKeyDictionary()


def can_prepack(model: nn.Module) -> bool:
    """Whether ``model``'s linear layers can run prepacked here.

    CPU weights in fp32 or bf16, no autocast, eval mode, and no gradients wanted. (Whether the
    oneDNN kernels are selected at all is the caller's check.)
    """
    weight = next(model.parameters(), None)
    return (
        weight is not None
        and weight.device.type == "cpu"
        and weight.dtype in _PACKABLE_DTYPES
        and not torch.is_autocast_enabled("cpu")
        and not torch.is_grad_enabled()
        and not model.training
    )


def _projections(model: nn.Module, projection_types: tuple[type, ...]) -> list[nn.Module]:
    """Every module of ``model`` that is a plain linear projection (``weight``, ``bias``, no more)."""
    return [module for module in model.modules() if isinstance(module, (nn.Linear, *projection_types))]


class PrepackedLinears:
    """oneDNN-prepacked copies of a model's linear weights, swapped in only around model calls.

    A weight is packed on first use and again only after it changed in place (its version
    counter moved) or was replaced, so decoding packs once per model. The modules' forwards are replaced only inside
    :meth:`applied`, never across a ``yield``: between decoding steps the model is its plain self
    and can be trained, or decoded by another stream.

    Args:
        model: the module whose `nn.Linear` layers (and causal LM head) to pack.
        rows_hint: the usual number of input rows per call (e.g. the decoding batch size); only
            a tuning hint, any number of rows works.
        projection_types: module classes besides `nn.Linear` whose forward is exactly
            ``F.linear(x, module.weight, module.bias)`` (e.g. a tied LM head).
        enabled: False leaves every forward as it is (the oneDNN kernels are not selected).
    """

    def __init__(self, model: nn.Module, rows_hint: int, projection_types: tuple[type, ...] = (), enabled: bool = True):
        self.model = model
        self.rows_hint = max(rows_hint, 1)
        self.enabled = enabled
        self._modules = _projections(model, projection_types)

    def _forward(self, module: nn.Module) -> Callable:
        """The packed forward of ``module``, packed again if its weight or bias changed since."""
        weight, bias = module.weight, module.bias
        if not isinstance(weight, torch.Tensor) or not (bias is None or isinstance(bias, torch.Tensor)):
            raise AttributeError(f"{type(module).__name__}'s weight and bias are not tensors")  # applied() skips it
        key = (id(weight), weight._version, -1 if bias is None else bias._version, self.rows_hint)
        cached = _PACKED.get(module)
        if cached is None or cached[0] != key:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), self.rows_hint)
            cached = (key, partial(onednn_product, weight=packed, bias=None if bias is None else bias.detach()))
            _PACKED[module] = cached
        return cached[1]

    @contextmanager
    def applied(self) -> Iterator[bool]:
        """Within the block the projections run prepacked (where :func:`can_prepack` allows).

        Yields whether they do. Modules whose forward was already replaced are left alone.
        """
        patched: list[tuple[nn.Module, Callable]] = []
        try:
            if self.enabled and can_prepack(self.model):
                try:
                    for module in self._modules:
                        if "forward" not in module.__dict__:
                            forward = self._forward(module)
                            module.__dict__["forward"] = forward  # a plain attribute: skips Module.__setattr__
                            patched.append((module, forward))
                except (RuntimeError, AttributeError, NotImplementedError):  # an op or dtype this build lacks
                    _restore(patched)
            yield bool(patched)
        finally:
            _restore(patched)


def _restore(patched: list[tuple[nn.Module, Callable]]) -> None:
    """Put back the class forward of every module in ``patched`` that still has the forward set here."""
    for module, forward in patched:
        if module.__dict__.get("forward") is forward:
            del module.__dict__["forward"]
    patched.clear()
