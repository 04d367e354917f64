"""A backbone with named heads: the module that is trained, checkpointed and loaded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import nn

from lmtrain.models.heads import build_head, build_task_head
from lmtrain.models.protocol import NamedHeads
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.transformer import Transformer


class LanguageModel(NamedHeads):
    """``backbone`` (a :class:`Transformer`) plus ``heads`` by name (``mlm``, ``nsp``, ``lm`` ...).

    Objectives call ``model.backbone(...)`` and ``model.heads[name](...)``; the model itself has
    no forward, so there is exactly one place where each objective decides what runs.

    Args:
        spec: the backbone.
        head_names: pretraining heads (mlm, nsp, lm), built with :func:`build_head`.
        task_heads: fine-tuning heads by name, each described as ``{"kind", "n_classes", "dropout"}``
            (see :func:`build_task_head`); the descriptions go into ``model.json`` so that
            checkpoints of fine-tuned models load like any other.
    """

    family = "transformer"  # the Transformer family's own model module (the name TransformerFamily registers)
    spec: TransformerSpec

    def __init__(self, spec: TransformerSpec, head_names: Iterable[str], task_heads: Mapping[str, dict] | None = None):
        super().__init__()
        self.spec = spec
        self.backbone = Transformer(spec)
        token_embedding = self.backbone.embeddings.token
        self.pretraining_heads = list(head_names)
        self.task_heads = {name: dict(desc) for name, desc in (task_heads or {}).items()}
        heads = {name: build_head(name, spec, token_embedding) for name in self.pretraining_heads}
        heads.update(
            {name: build_task_head(desc, spec.d_model, spec.init_std) for name, desc in self.task_heads.items()}
        )
        self.heads = nn.ModuleDict(heads)

    def num_parameters(self, include_embeddings: bool = True) -> int:
        """Number of distinct trainable parameters (tied matrices counted once)."""
        total = super().num_parameters()
        if not include_embeddings:
            total -= self.backbone.embeddings.token.weight.numel()
        return total
