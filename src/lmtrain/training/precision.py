"""Device and numeric precision, resolved once per run."""

from __future__ import annotations

import contextlib
import logging

import torch

from lmtrain.errors import UserError
from lmtrain.kernels.probe import cpu_flags

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
        raise UserError(f"{key}={name} asks for CUDA, but no CUDA device is available here; use {key}=cpu (or auto).")
    return device


def cpu_bf16_support() -> str | None:
    """This CPU's native bf16 arithmetic (``AMX-BF16``, ``AVX512-BF16``, ``BF16`` on ARM), or None where it has none."""
    flags = cpu_flags()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    if "amx_bf16" in flags or amx():
        return "AMX-BF16"
    if "avx512_bf16" in flags or avx512_bf16():
        return "AVX512-BF16"
    return "BF16" if "bf16" in flags else None  # ARM's `Features` line


def check_bf16_on_cpu(support: str | None, key: str = "trainer.precision") -> None:
    """Say in the log how bf16 runs on this CPU: natively (``support``), or emulated and slow (a warning)."""
    if support is None:
        log.warning(
            "%s=bf16 on a CPU without native bf16 arithmetic (no AVX512-BF16 or AMX-BF16): PyTorch "
            "emulates it, so training is likely slower than in fp32. It runs as asked; use %s=fp32 for "
            "speed on this machine.",
            key,
            key,
        )
    else:
        log.info(
            "%s=bf16 on CPU (%s): matrix products in bf16 under autocast; weights, gradients and optimizer "
            "state stay in fp32",
            key,
            support,
        )


class Precision:
    """Autocast and gradient scaling for ``precision`` on ``device``.

    fp32: nothing. bf16: autocast to bfloat16, on CUDA or on CPU; the weights, their gradients and the
    optimizer state stay fp32 (the master copy a checkpoint saves, so resume is exact). On a CPU
    without native bf16 arithmetic it still runs, with a warning that it is likely slower than fp32.
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
        if precision == "bf16" and device.type == "cpu":
            check_bf16_on_cpu(cpu_bf16_support())

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
    log.info(
        "CUDA fp32 matrix products: %s (trainer.tf32=%s)", "TF32" if enabled else "full fp32", str(enabled).lower()
    )
