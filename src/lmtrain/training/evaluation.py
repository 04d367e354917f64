"""The one evaluation loop: an objective's metrics over a dataset, in order, without gradients."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from lmtrain.data.sampler import EpochBatches
from lmtrain.objectives.base import Objective


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` on ``device`` (asynchronous copies from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def add_sums(total: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> None:
    """Add detached ``new`` metric sums into ``total`` in place (no host sync)."""
    for key, value in new.items():
        value = value.detach()
        total[key] = total[key] + value if key in total else value.clone()


@torch.no_grad()
def evaluate_objective(model: nn.Module, objective: Objective, dataset: Dataset, collate: Callable,
                       batch_size: int, max_batches: int | None, device: torch.device,
                       autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                       predictions_out: list | None = None) -> tuple[dict[str, float], int]:
    """Run ``objective`` over ``dataset`` in order; returns (metrics, sequences evaluated).

    Args:
        model: the model, on ``device``; put in eval mode here and restored afterwards.
        objective: turns (model, batch) into metric sums (and predictions in eval mode).
        dataset: examples; ``collate`` pads a list of them into a batch. Datasets with
            ``set_epoch`` are set to epoch 0, so dynamic masks are the same at every evaluation.
        batch_size: sequences per forward pass.
        max_batches: evaluate only the first batches (None = all).
        device: where the model lives.
        autocast: the precision context of forward passes.
        predictions_out: if given, the objective's predictions of every batch are appended to it.
    """
    was_training = model.training
    model.eval()
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    batches = EpochBatches(len(dataset), batch_size, shuffle=False, drop_last=False).batches(0)
    batches = batches[:max_batches] if max_batches else batches
    sums: dict[str, torch.Tensor] = {}
    predictions = []
    for indices in batches:
        batch = to_device(collate([dataset[i] for i in indices]), device)
        with autocast():
            out = objective(model, batch, objective.count_targets(batch))
        add_sums(sums, out.sums)
        if out.predictions is not None:
            predictions.append(out.predictions)
    model.train(was_training)
    if predictions_out is not None:
        predictions_out.extend(predictions)
    metrics = objective.summarize({k: float(v) for k, v in sums.items()}, predictions or None)
    return metrics, sum(len(b) for b in batches)
