"""The contract between the trainer and an objective.

The trainer knows nothing about batch keys or model families. For each optimizer step it asks
the objective how many targets each loss term has in every micro-batch (``count_targets``),
sums them over the accumulation window (and across ranks), and passes those totals back as
``norm`` so every loss is normalised by the number of targets of the whole window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX


@dataclass
class ObjectiveOutput:
    """What one micro-batch gives the trainer.

    Attributes:
        loss: the scalar to backpropagate (already divided by the window's target counts).
        sums: detached metric numerators and denominators (e.g. ``mlm_correct``, ``mlm_count``),
            summed by the trainer over steps and turned into metrics by ``Objective.summarize``.
        predictions: what corpus-level metrics need (returned only when the model is in eval
            mode); the trainer collects them over the evaluation set for ``summarize``.
    """

    loss: torch.Tensor
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    predictions: Any = None  # evaluation only: per-batch predictions for corpus-level metrics (e.g. seqeval)


class Objective:
    """Base class: subclasses define ``head_names``, ``count_targets``, ``__call__``, ``summarize``."""

    head_names: tuple[str, ...] = ()
    main_metric: str = "loss"  # the metric that ranks runs, early-stops and picks the best checkpoint
    higher_is_better: bool = False  # direction of main_metric

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Targets per loss term in ``batch`` (plus ``tokens``: real input tokens, for throughput)."""
        raise NotImplementedError

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Loss of ``batch`` normalised by the window totals ``norm``, and metric sums."""
        raise NotImplementedError

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """Metrics from summed numerators and denominators (and collected eval predictions)."""
        raise NotImplementedError

    def after_optimizer_step(self, model: nn.Module) -> None:
        """Called by the trainer right after every optimizer step (default: nothing).

        For state that follows the trained weights without being trained itself, such as ALBEF's
        momentum (EMA) encoders. ``model`` is the unwrapped model, never the DDP wrapper.
        """


class _TokenFeatureModel(Protocol):
    """A model whose ``backbone`` gives a state per token (``Capability.MASKED_LM``, ``TOKEN_FEATURES``)."""

    def backbone(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, T) token ids -> (B, T, D) states."""


class HeadedFeatureModel(_TokenFeatureModel, Protocol):
    """A model with a state per token and its heads by name (a fine-tuned or masked-LM model)."""

    heads: nn.ModuleDict


def states_at(model: nn.Module, batch: dict[str, torch.Tensor], wanted: torch.Tensor) -> torch.Tensor:
    """The backbone's hidden states of ``batch`` at the ``wanted`` (B, T) positions: (N, D), row-major order.

    A backbone with a ``states_at`` method (lmtrain's Transformer) computes its last layer at those
    positions only; any other backbone runs whole and its states are picked.
    """
    # the objective's capability (checked before training) promises the backbone; a cast, not isinstance:
    # no check in the compiled step
    backbone = cast(_TokenFeatureModel, model).backbone
    inputs = (batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    select = getattr(backbone, "states_at", None)
    if select is not None:
        return select(*inputs, wanted)
    return backbone(*inputs)[wanted]


def states_for_head(model: nn.Module, batch: dict[str, torch.Tensor], head: nn.Module) -> torch.Tensor:
    """The backbone's (B, T, D) states of ``batch`` for ``head``, computed where the head reads them.

    A head that names the positions it reads (``TaskHead.positions_read``, e.g. the first token of a
    pooled classifier) gets the states there, from :func:`states_at`, and zeros elsewhere; any other
    head, or any head in a compiled step, gets the whole backbone's states.
    """
    read = getattr(head, "positions_read", None)
    # compiled, the whole forward (as states_at's): the scatter's backward does not trace under AOTAutograd
    wanted = read(batch["attention_mask"]) if read is not None and not torch.compiler.is_compiling() else None
    if wanted is None:
        backbone = cast(_TokenFeatureModel, model).backbone
        return backbone(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    states = states_at(model, batch, wanted)  # (N, D)
    return states.new_zeros(*wanted.shape, states.shape[-1]).index_put((wanted,), states)


def labelled_positions(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions with a label (not -100) and their labels: ((B, T) bool, (N,) targets)."""
    selected = batch["labels"] != IGNORE_INDEX  # (B, T)
    return selected, batch["labels"][selected]


def ratio(sums: dict[str, float], numerator: str, denominator: str) -> float:
    """``sums[numerator] / sums[denominator]``, NaN when the denominator is zero."""
    den = sums.get(denominator, 0.0)
    return sums.get(numerator, 0.0) / den if den else math.nan


def perplexity(loss: float) -> float:
    """exp(loss), capped to stay finite for early, untrained models."""
    return math.exp(min(loss, 50.0)) if math.isfinite(loss) else math.nan
