"""The training batches in the epoch sampler's order, continued from any batch of any epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader

from lmtrain.config.training import TrainerConfig
from lmtrain.data.sampler import EpochBatches
from lmtrain.errors import UserError
from lmtrain.training.distributed import Distributed
from lmtrain.training.evaluation import EvaluationSet, to_device
from lmtrain.training.train_state import TrainState


class TrainingSet(EvaluationSet, Protocol):
    """A map-style dataset the trainer reads epoch by epoch."""

    def set_epoch(self, epoch: int) -> None:
        """Draw the choices of ``epoch`` (masks, crops); called before each epoch's first batch."""


class TrainBatches:
    """Batches of ``dataset`` in ``sampler``'s order, collated and moved to ``device``.

    The position is the train state's ``epoch`` and ``batch_in_epoch``: after a restore, the next
    batch is the one the saved run would have read next.
    """

    def __init__(
        self, dataset: TrainingSet, sampler: EpochBatches, collate: Callable, num_workers: int, device: torch.device
    ):
        self.dataset, self.sampler, self.collate = dataset, sampler, collate
        self.num_workers, self.device = num_workers, device
        self._batches: Iterator[Any] | None = None

    def _loader(self, batches: list[list[int]]) -> DataLoader:
        # A private generator keeps DataLoader from drawing on the global RNG, which dropout
        # uses: otherwise a resumed run would see different dropout masks.
        return DataLoader(
            self.dataset,  # type: ignore[arg-type]  # any map-style set runs; the stubs ask for Dataset
            batch_sampler=batches,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),
        )

    def next_batch(self, state: TrainState) -> dict[str, torch.Tensor]:
        """The batch at ``state``'s position, which it advances (into the next epoch at an epoch's end)."""
        while True:
            if self._batches is None:
                self.dataset.set_epoch(state.epoch)
                remaining = self.sampler.batches(state.epoch, state.batch_in_epoch)
                self._batches = iter(self._loader(remaining))
            try:
                batch = next(self._batches)
                state.batch_in_epoch += 1
                return to_device(batch, self.device)
            except StopIteration:
                self._batches = None
                state.epoch += 1
                state.batch_in_epoch = 0

    def restart(self) -> None:
        """Read the next batch from the state's position (after a restore moved it)."""
        self._batches = None


def training_batches(
    train_set: TrainingSet, collate: Callable, cfg: TrainerConfig, dist: Distributed, device: torch.device
) -> TrainBatches:
    """The run's training batches: shuffled each epoch (by length when ``trainer.bucket_by_length``), this
    rank's share of every step's batches.

    Raises:
        UserError: fewer sequences than one batch.
    """
    lengths = getattr(train_set, "lengths", None) if cfg.bucket_by_length else None
    sampler = EpochBatches(
        len(train_set),
        cfg.batch_size,
        seed=cfg.seed,
        shuffle=True,
        drop_last=True,
        rank=dist.rank,
        world_size=dist.world_size,
        lengths=lengths,
    )
    if len(sampler) == 0:
        raise UserError(
            f"the training data has {len(train_set)} sequences, fewer than one batch "
            f"(trainer.batch_size={cfg.batch_size}); add text or lower trainer.batch_size."
        )
    return TrainBatches(train_set, sampler, collate, cfg.num_workers, device)
