"""AdamW with decoupled weight decay, and warmup + decay learning-rate schedules."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lmtrain.config.training import OptimConfig
from lmtrain.errors import UserError


def parameter_groups(
    model: nn.Module, weight_decay: float, lr: float, head_lr: float | None = None
) -> list[dict[str, Any]]:
    """Matrices decay; biases and normalisation weights (1-D tensors) do not. Frozen ones are left out.

    Args:
        model: the module to optimise.
        weight_decay: decoupled weight decay of the matrices.
        lr: learning rate of every parameter ...
        head_lr: ... except those under ``heads.`` when given (fine-tuning a new head faster).
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))  # tied matrices appear under two names: optimise them once
        is_head = head_lr is not None and name.startswith("heads.")
        groups.setdefault((param.dim() >= 2, is_head), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": head_lr if is_head else lr}
        for (decays, is_head), params in groups.items()
    ]


def build_optimizer(
    model: nn.Module, optim_cfg: OptimConfig, device: torch.device, head_lr: float | None = None
) -> torch.optim.Optimizer:
    """AdamW over :func:`parameter_groups`, fused on CUDA and CPU, multi-tensor (foreach) elsewhere.

    On CPU the fused step reads each parameter, gradient and moment once instead of once per
    operation: a MiniLM fine-tuning step (30k-word embedding, short batches) spent over half its
    time in the multi-tensor step (docs/performance.md).
    """
    if optim_cfg.lr <= 0:
        raise UserError(f"optim.lr={optim_cfg.lr} must be positive.")
    kwargs: dict[str, Any] = {"lr": optim_cfg.lr, "betas": tuple(optim_cfg.betas), "eps": optim_cfg.eps}
    if device.type in ("cuda", "cpu"):
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = True
    groups = parameter_groups(model, optim_cfg.weight_decay, optim_cfg.lr, head_lr)
    if not groups:
        raise UserError("every parameter is frozen, so there is nothing to train; unfreeze some layers.")
    return (AdamW if DIRECT_STEPS else torch.optim.AdamW)(groups, **kwargs)


def _dynamo_loaded() -> bool:
    """Whether ``torch._dynamo`` is imported: until it is, nothing in the process can be compiling."""
    return "torch._dynamo" in sys.modules


def _direct_until_dynamo(name: str) -> Callable:
    """``torch.optim.Optimizer.<name>`` (which turns compilation off around itself, importing ``torch._dynamo``
    to do so), calling its body directly while ``torch._dynamo`` is not loaded: there is nothing to turn off."""
    torch_method = getattr(torch.optim.Optimizer, name)
    body = inspect.unwrap(torch_method)

    @functools.wraps(torch_method)
    def method(self, *args, **kwargs):
        return (torch_method if _dynamo_loaded() else body)(self, *args, **kwargs)

    return method


def _torch_step() -> tuple[Callable, Callable] | None:
    """(the body of ``torch.optim.AdamW.step``, the body under the decorator torch runs it in), or None where
    this PyTorch is not built that way (a private name moved): then the optimizer is torch's own AdamW."""
    try:
        from torch.optim.optimizer import _use_grad_for_differentiable
    except ImportError:
        return None
    body = inspect.unwrap(torch.optim.AdamW.step)
    return (body, _use_grad_for_differentiable(body)) if body is not torch.optim.AdamW.step else None


_STEPS = _torch_step()
DIRECT_STEPS = _STEPS is not None  # whether build_optimizer's AdamW can skip torch._dynamo (else torch's own)
_STEP_BODY, _TORCH_STEP = _STEPS or (torch.optim.AdamW.step, torch.optim.AdamW.step)


class AdamW(torch.optim.AdamW):
    """``torch.optim.AdamW``, without importing ``torch._dynamo`` in a process that compiles nothing.

    Building, stepping, zeroing and saving a torch optimizer each import ``torch._dynamo`` (0.8 s of a
    2-core CPU, a twentieth of a whole BERT-mini run) only to turn compilation off around themselves, or
    to mark a graph break, which does nothing outside compilation. While ``torch._dynamo`` is not loaded
    nothing can be compiling, so these methods run torch's own bodies directly; once it is loaded
    (``trainer.compile=true``), they run exactly as torch's. The updates, the hooks and ``state_dict``
    are torch's.
    """

    add_param_group = _direct_until_dynamo("add_param_group")
    zero_grad = _direct_until_dynamo("zero_grad")
    state_dict = _direct_until_dynamo("state_dict")
    load_state_dict = _direct_until_dynamo("load_state_dict")

    def step(self, closure=None):
        """One AdamW update (torch's), under ``no_grad`` as torch runs it."""
        if _dynamo_loaded() or self.defaults["differentiable"]:
            return _TORCH_STEP(self, closure)
        with torch.no_grad():
            return _STEP_BODY(self, closure)


def lr_multiplier(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier at ``step``: linear warmup, then linear / cosine decay or constant."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        decay = 1.0 - progress
    elif schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise UserError(f"optim.schedule={schedule} is not supported; use linear, cosine or constant.")
    return min_ratio + (1.0 - min_ratio) * decay


class LRPlan:
    """The learning-rate multiplier by step, over a horizon the trainer may set once it knows it.

    ``optim.decay_steps`` fixes the horizon; otherwise it starts at ``max_steps`` and the trainer
    shortens it to what ``max_epochs`` or ``max_time`` allow (:meth:`set_horizon`).
    """

    def __init__(self, optim_cfg: OptimConfig, max_steps: int):
        self.schedule = optim_cfg.schedule
        self.min_ratio = optim_cfg.min_lr_ratio
        self.warmup_steps = optim_cfg.warmup_steps
        self.warmup_ratio = optim_cfg.warmup_ratio
        self.fixed = optim_cfg.decay_steps is not None
        self.horizon = getattr(optim_cfg, "decay_steps", None) or max_steps
        lr_multiplier(self.warmup, self.warmup, self.horizon, self.schedule, self.min_ratio)  # validates the name

    @property
    def warmup(self) -> int:
        """Warmup steps: ``warmup_steps``, else ``warmup_ratio`` of the horizon."""
        return self.warmup_steps if self.warmup_steps is not None else int(self.warmup_ratio * self.horizon)

    def set_horizon(self, steps: int) -> None:
        """Plan the decay over ``steps`` (ignored when ``optim.decay_steps`` fixed it)."""
        if not self.fixed:
            self.horizon = max(1, int(steps))

    def __call__(self, step: int) -> float:
        return lr_multiplier(step, self.warmup, self.horizon, self.schedule, self.min_ratio)


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim_cfg: OptimConfig, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of ``optim_cfg``, planned over ``optim_cfg.decay_steps`` (default: ``max_steps``).

    Past its horizon the learning rate stays at the final ``min_lr_ratio`` share of the peak. The
    returned scheduler's ``plan`` (an :class:`LRPlan`) lets the trainer move the horizon.
    """
    return PlannedLR(optimizer, LRPlan(optim_cfg, max_steps))


class PlannedLR(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR over an :class:`LRPlan` whose horizon comes from the config, never from a checkpoint.

    The plan is kept out of ``state_dict``: a resumed run plans its schedule from its own config
    (and a checkpoint holds only plain values, loadable with ``weights_only=True``). Whenever the
    plan moves (a restore, :meth:`set_horizon`), the optimizer's learning rates are set to the plan's
    at the current step, so the very next step already follows it; an unchanged plan gives the
    saved rates exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, plan: LRPlan):
        self.plan = plan
        super().__init__(optimizer, lambda step: plan(step))

    def state_dict(self) -> dict[str, Any]:
        """LambdaLR's state without the plan."""
        state = super().state_dict()
        state.pop("plan", None)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """LambdaLR's state, then this run's plan at the restored step (the saved rates follow the old plan)."""
        super().load_state_dict(state_dict)
        self._follow_plan()

    def set_horizon(self, steps: int) -> None:
        """Plan the decay over ``steps`` (see :meth:`LRPlan.set_horizon`), from the current step on."""
        before = self.plan.horizon
        self.plan.set_horizon(steps)
        if self.plan.horizon != before:
            self._follow_plan()

    def _follow_plan(self) -> None:
        # the expression LambdaLR.get_lr computes, so an unchanged plan restores the same floats
        rates = [base_lr * self.plan(self.last_epoch) for base_lr in self.base_lrs]
        for group, rate in zip(self.optimizer.param_groups, rates):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(rate)
            else:
                group["lr"] = rate
        self._last_lr = rates
