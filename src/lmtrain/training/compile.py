"""`trainer.compile=true`: the training step through `torch.compile`, falling back to eager.

Compilation happens lazily, on the first call with a new input shape, and can fail for reasons
that have nothing to do with the model: no C++ compiler for Inductor's CPU kernels, no Triton
for its GPU kernels, a Python version Dynamo does not support yet. A run should not die for
that, so the first failure logs one warning and every later call runs eagerly.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

BACKEND = "inductor"  # torch.compile's default; tests swap in a backend that needs no compiler


def _compiler_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the compiler failed", not "the model's code is wrong"."""
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:  # a build without Dynamo
        return (RuntimeError,)
    return (TorchDynamoException,)


class CompiledStep:
    """Call ``module`` through ``torch.compile``; after a compiler failure, call it eagerly.

    Attributes other than the call (DDP's ``no_sync``, ``parameters`` ...) are the module's own.

    Args:
        module: what to compile (the trainer's objective step, DDP-wrapped or not).
        backend: the ``torch.compile`` backend.
    """

    def __init__(self, module: nn.Module, backend: str | None = None):
        self.module = module
        self.compiled: Any = None
        try:
            self.compiled = torch.compile(module, backend=backend or BACKEND)
        except Exception as error:  # e.g. "Dynamo is not supported on this Python version"
            self._fall_back(error)

    @property
    def is_compiled(self) -> bool:
        """Whether calls still go through the compiled module."""
        return self.compiled is not None

    def _fall_back(self, error: BaseException) -> None:
        cause = getattr(error, "inner_exception", None) or error  # what the backend itself raised
        lines = [line for line in str(cause).splitlines() if line.strip()]
        log.warning(
            "torch.compile is not available here (%s: %s); training runs eagerly. "
            "Set trainer.compile=false to skip the attempt.",
            type(cause).__name__,
            lines[0] if lines else "no message",
        )
        self.compiled = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(*args, **kwargs)``, compiled while compilation works."""
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except _compiler_errors() as error:
                self._fall_back(error)
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "module":  # not set yet (during unpickling): avoid endless recursion
            raise AttributeError(name)
        return getattr(self.module, name)


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module | CompiledStep:
    """``module`` as :class:`CompiledStep` when ``enabled``, else unchanged."""
    return CompiledStep(module) if enabled else module
