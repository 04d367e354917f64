"""Device and numeric precision, resolved once per run."""

from __future__ import annotations

import contextlib
import logging

import torch

from lmtrain.errors import UserError

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(name: str, key: str = "trainer.device") -> torch.device:
    """``auto`` -> CUDA if available else CPU; otherwise the named device, checked to exist.

    Args:
        name: auto | cpu | cuda | cuda:N.
        key: the config key that named it, quoted in error messages.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{key}={name} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}={name} asks for CUDA, but no CUDA device is available here; "
                        f"use {key}=cpu (or auto).")
    return device


class Precision:
    """Autocast and gradient scaling for ``precision`` on ``device``.

    fp32: nothing. bf16: autocast to bfloat16 (CUDA, or CPU where the user asks for it).
    fp16: autocast to float16 with a gradient scaler; CUDA only.
    ``tf32`` (CUDA only): fp32 matrix products and convolutions in TF32 (``trainer.tf32``), said in the log.
    """

    def __init__(self, precision: str, device: torch.device, tf32: bool = True):
        if precision not in PRECISIONS:
            raise UserError(f"trainer.precision={precision} is not supported; use {', '.join(PRECISIONS)}.")
        if precision == "fp16" and device.type != "cuda":
            raise UserError("trainer.precision=fp16 needs a CUDA device; on CPU use bf16 or fp32.")
        self.precision = precision
        self.device = device
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        if device.type == "cuda":
            use_tf32(tf32)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def use_tf32(enabled: bool) -> None:
    """Let CUDA compute fp32 matrix products and convolutions in TF32 (``trainer.tf32``), or keep them full fp32."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    log.info("CUDA fp32 matrix products: %s (trainer.tf32=%s)", "TF32" if enabled else "full fp32",
             str(enabled).lower())
