"""A backbone with named heads: the module that is trained, checkpointed and loaded."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from lmtrain.models.heads import build_head
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.transformer import Transformer


class LanguageModel(nn.Module):
    """``backbone`` (a :class:`Transformer`) plus ``heads`` by name (``mlm``, ``nsp``, ``lm`` ...).

    Objectives call ``model.backbone(...)`` and ``model.heads[name](...)``; the model itself has
    no forward, so there is exactly one place where each objective decides what runs.
    """

    def __init__(self, spec: TransformerSpec, head_names: Iterable[str]):
        super().__init__()
        self.spec = spec
        self.backbone = Transformer(spec)
        token_embedding = self.backbone.embeddings.token
        self.heads = nn.ModuleDict({name: build_head(name, spec, token_embedding) for name in head_names})

    @property
    def head_names(self) -> list[str]:
        """Names of the heads, in construction order."""
        return list(self.heads.keys())

    def num_parameters(self, include_embeddings: bool = True) -> int:
        """Number of distinct trainable parameters (tied matrices counted once)."""
        seen = {id(p): p for p in self.parameters()}
        total = sum(p.numel() for p in seen.values())
        if not include_embeddings:
            total -= self.backbone.embeddings.token.weight.numel()
        return total
