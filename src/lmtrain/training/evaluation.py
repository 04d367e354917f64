"""The one evaluation loop: an objective's metrics over a dataset, in order, without gradients."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from lmtrain.data.sampler import EpochBatches
from lmtrain.objectives.base import Objective
from lmtrain.training.distributed import Distributed


class EvaluationSet(Protocol):
    """A map-style dataset: its number of examples, and each example by index."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` on ``device`` (asynchronous copies from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def add_sums(total: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> None:
    """Add detached ``new`` metric sums into ``total`` in place (no host sync)."""
    for key, value in new.items():
        value = value.detach()
        total[key] = total[key] + value if key in total else value.clone()


def rank_share(n_batches: int, rank: int, world_size: int) -> range:
    """The batches rank ``rank`` evaluates: a contiguous run (sizes differ by at most one), so the ranks' parts,
    joined in rank order, are the set in order."""
    base, extra = divmod(n_batches, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def _summed_over_ranks(
    sums: dict[str, torch.Tensor], sequences: int, dist: Distributed, device: torch.device
) -> tuple[dict[str, torch.Tensor], int]:
    """Every rank's metric sums added up (a sum some rank lacks, e.g. one no batch of its part produced, counts
    as 0 there), and the sequences all ranks evaluated."""
    seen = dist.gather((sorted(sums), sequences))
    zero = torch.zeros((), dtype=torch.float64, device=device)
    keys = sorted({key for keys, _ in seen for key in keys})
    return dist.sum({key: sums.get(key, zero) for key in keys}), sum(n for _, n in seen)


def _gathered(predictions: list, model: nn.Module, dist: Distributed) -> list:
    """Every rank's predictions in rank order (= the set's order). An entry that is the model itself (retrieval
    re-ranks with it) travels as a marker and becomes this rank's model again."""
    marker = "<the evaluated model>"
    portable = [
        {k: marker if v is model else v for k, v in p.items()} if isinstance(p, dict) else p for p in predictions
    ]
    joined = [p for part in dist.gather(portable) for p in part]
    return [
        {k: model if isinstance(v, str) and v == marker else v for k, v in p.items()} if isinstance(p, dict) else p
        for p in joined
    ]


@torch.no_grad()
def evaluate_objective(
    model: nn.Module,
    objective: Objective,
    dataset: EvaluationSet,
    collate: Callable,
    batch_size: int,
    max_batches: int | None,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    predictions_out: list | None = None,
    dist: Distributed | None = None,
) -> tuple[dict[str, float], int]:
    """Run ``objective`` over ``dataset`` in order; returns (metrics, sequences evaluated).

    With ``dist`` (several ranks) each rank evaluates its share of the batches (:func:`rank_share`) and the
    metric sums and predictions of all ranks are combined, so every rank returns the metrics one process
    would compute over the whole set. Under FSDP every forward pass gathers weights with all ranks, so a rank
    with a shorter share runs the set's first batch again, and ignores it, until every rank has run as many.

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
        dist: this process's place in a data-parallel job; every rank must call this then (None = one process
            evaluates the whole set).
    """
    was_training = model.training
    model.eval()
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    shared = dist if dist is not None and dist.enabled else None
    batches, counted = _rank_batches(len(dataset), batch_size, max_batches, shared)
    sums, predictions = _run_batches(model, objective, dataset, collate, batches, counted, device, autocast)
    model.train(was_training)
    sequences = sum(len(indices) for indices in batches[:counted])
    if shared:
        sums, sequences = _summed_over_ranks(sums, sequences, shared, device)
        predictions = _gathered(predictions, model, shared)
    if predictions_out is not None:
        predictions_out.extend(predictions)
    metrics = objective.summarize({k: float(v) for k, v in sums.items()}, predictions or None)
    return metrics, sequences


def held_out_batches(n_sequences: int, batch_size: int, max_batches: int | None) -> list[list[int]]:
    """The batches (dataset indices) an evaluation runs: the set in order, ``batch_size`` sequences at a time,
    the first ``max_batches`` of them (None = all)."""
    batches = EpochBatches(n_sequences, batch_size, shuffle=False, drop_last=False).batches(0)
    return batches[:max_batches] if max_batches else batches


def _rank_batches(
    n_sequences: int, batch_size: int, max_batches: int | None, shared: Distributed | None
) -> tuple[list[list[int]], int]:
    """The batches (dataset indices) this rank runs, in order, and how many of them count: its share of the
    set's first ``max_batches``, then (under FSDP) the first batch again until every rank runs as many."""
    batches = held_out_batches(n_sequences, batch_size, max_batches)
    share = rank_share(len(batches), shared.rank, shared.world_size) if shared else range(len(batches))
    padding = len(rank_share(len(batches), 0, shared.world_size)) - len(share) if shared and shared.sharded else 0
    return [batches[i] for i in share] + [batches[0]] * padding, len(share)


def _run_batches(
    model: nn.Module,
    objective: Objective,
    dataset: EvaluationSet,
    collate: Callable,
    batches: list[list[int]],
    counted: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> tuple[dict[str, torch.Tensor], list]:
    """Run ``objective`` on each batch of ``batches`` (dataset indices); returns the metric sums and the
    predictions of the first ``counted`` batches (the others only keep this rank in step with the others)."""
    sums: dict[str, torch.Tensor] = {}
    predictions = []
    for number, indices in enumerate(batches):
        batch = to_device(collate([dataset[i] for i in indices]), device)
        with autocast():
            out = objective(model, batch, objective.count_targets(batch))
        if number >= counted:  # a padding pass: it only keeps this rank in step with the others
            continue
        add_sums(sums, out.sums)
        if out.predictions is not None:
            predictions.append(out.predictions)
    return sums, predictions
