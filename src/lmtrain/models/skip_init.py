"""Building a model whose every weight is loaded right after, without drawing initial values first.

A model built from a checkpoint or a Hugging Face folder had each of its weights filled with random values
(22.7M for MiniLM: 0.4 s on a 2-core CPU) only to have them all replaced by the loaded ones; and the check of a
``model.json`` on the meta device (:mod:`lmtrain.models.checked_build`) sent ``normal_`` through PyTorch's
Python reference ops, whose first call imports ``torch._dynamo`` (1.8 s). Inside :func:`weights_left_as_allocated`
the initialisers of ``torch.nn.init`` leave the tensor as it is, as Hugging Face's ``no_init_weights`` does.

Only where a strict load follows (every parameter and buffer replaced, or the load refused): a weight left as
allocated must never be trained or used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


def _leave(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


@contextmanager
def weights_left_as_allocated() -> Iterator[None]:
    """Within the block, ``torch.nn.init``'s initialisers (as modules and lmtrain's own code call them) return the
    tensor unchanged; restored on exit, also on an error."""
    saved = {name: getattr(nn.init, name) for name in INITIALISERS if hasattr(nn.init, name)}
    try:
        for name in saved:
            setattr(nn.init, name, _leave)
        yield
    finally:
        for name, initialiser in saved.items():
            setattr(nn.init, name, initialiser)
