"""What every trained model offers, whatever its family: the :class:`TrainedModel` protocol.

The trainer, checkpoints (``model.json``), ``lmtrain pretrain``'s summary and the commands that load
a model rely on these attributes only; anything else (``backbone``, ``encode_text`` ...) belongs to
the family's own objectives and tasks. :class:`NamedHeads` gives a family's module the shared parts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class ModelSpec(Protocol):
    """A family's frozen sizes, stored in ``model.json``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain (nested) values for JSON."""


@runtime_checkable
class TrainedModel(Protocol):
    """A model of any family.

    Attributes:
        family: the name of its :class:`~lmtrain.models.families.ModelFamily` (rebuilds it from ``model.json``).
        spec: its sizes.
        heads: its heads by name.
        pretraining_heads: the names of the heads pretraining objectives use (stored in ``model.json``).
        task_heads: fine-tuning heads by name, each ``{"kind", "n_classes", ...}`` (stored in ``model.json``).
    """

    heads: nn.ModuleDict
    pretraining_heads: list[str]
    task_heads: dict[str, dict]

    # read-only here: a family's module names itself in a class attribute and keeps its own spec class
    @property
    def family(self) -> str:
        """The family's name."""

    @property
    def spec(self) -> ModelSpec:
        """Its sizes."""

    @property
    def head_names(self) -> list[str]:
        """Names of the heads, in construction order."""

    def num_parameters(self, include_embeddings: bool = True) -> int:
        """Number of distinct trainable parameters (``include_embeddings=False`` leaves out the token embedding
        where the family has one)."""


class NamedHeads(nn.Module):
    """The base of a family's model module: ``head_names`` and a parameter count from its ``heads``.

    A subclass sets the :class:`TrainedModel` attributes declared here (``family`` on the class).
    """

    family: ClassVar[str] = ""
    spec: ModelSpec
    heads: nn.ModuleDict
    pretraining_heads: list[str]
    task_heads: dict[str, dict]

    @property
    def head_names(self) -> list[str]:
        """Names of the heads, in construction order."""
        return list(self.heads.keys())

    def num_parameters(self, include_embeddings: bool = True) -> int:
        """Number of parameters, each shared one once (``include_embeddings`` matters to families that
        override this)."""
        return sum(p.numel() for p in self.parameters())


class ProjectionHead(Protocol):
    """A language-model head whose vocabulary projection a loss fuses into its cross-entropy: the logits are
    ``transform(hidden) @ weight.T + bias`` (lmtrain's MLM and causal LM heads; the ``lm`` head that
    :attr:`~lmtrain.models.capabilities.Capability.CAUSAL_LM` promises)."""

    weight: torch.Tensor  # (V, D)
    bias: torch.Tensor | None  # (V,), or None: no bias

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The states the projection reads, (N, D) -> (N, D) (the identity for a causal LM head)."""
