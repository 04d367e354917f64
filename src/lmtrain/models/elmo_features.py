"""ELMo features for downstream tasks: a pretrained biLM's layers, mixed by learned scalar weights.

As in Peters et al. (2018), every token gets ``gamma * sum_j s_j h_j`` where ``h_0`` is the
context-independent token vector (repeated for both directions) and ``h_j`` joins the forward
and backward states of LSTM layer j. The biLM is usually frozen: only ``s``, ``gamma`` and the
task head learn. A task biLSTM reads ``[x_k; ELMo_k]``, the mix joined with a context-independent
token vector (here the biLM's own layer 0), as the paper's task models do.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from lmtrain.models.elmo import BiLM, ElmoSpec
from lmtrain.models.heads import build_task_head
from lmtrain.models.protocol import NamedHeads
from lmtrain.models.scalar_mix import ScalarMix

BILM_PREFIX = "backbone.bilm."


class ElmoFeatures(nn.Module):
    """A :class:`BiLM` plus a :class:`ScalarMix` over its L + 1 layers: (B, T) ids -> (B, T, 2 d_model).

    Args:
        spec: the biLM's sizes.
        chars: the char CNN's character table (None when a checkpoint will fill it).
        with_tokens: append the context-independent token vector: (B, T, 3 d_model).
    """

    def __init__(self, spec: ElmoSpec, chars: torch.Tensor | None = None, with_tokens: bool = False):
        super().__init__()
        self.bilm = BiLM(spec, chars)
        self.mix = ScalarMix(spec.n_layers + 1)
        self.frozen = False
        self.with_tokens = with_tokens
        self.d_out = (3 if with_tokens else 2) * spec.d_model

    def freeze_bilm(self) -> int:
        """Fix the biLM: no gradients and no dropout in it (the mix still learns).

        Returns:
            The number of frozen parameter tensors.
        """
        self.frozen = True
        params = list(self.bilm.parameters())
        for param in params:
            param.requires_grad_(False)
        self.bilm.eval()
        return len(params)

    def train(self, mode: bool = True) -> ElmoFeatures:
        """Set training mode; a frozen biLM stays in eval mode (its features do not change from step to step)."""
        super().train(mode)
        if self.frozen:
            self.bilm.eval()
        return self

    def layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The L + 1 feature layers, each (B, T, 2 d_model): token vectors, then each LSTM layer."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            states = self.bilm(input_ids, attention_mask)
        layers = [torch.cat([states.tokens, states.tokens], dim=-1)]  # (B, T, 2 d_model)
        layers += [torch.cat([f, b], dim=-1) for f, b in zip(states.forward, states.backward)]
        return layers

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mixed ELMo features (B, T, d_out); ``token_type_ids`` is accepted and unused (no segments)."""
        layers = self.layers(input_ids, attention_mask)
        mixed = self.mix(layers)  # (B, T, 2 d_model)
        if not self.with_tokens:
            return mixed
        return torch.cat([layers[0][..., : self.bilm.spec.d_model], mixed], dim=-1)  # (B, T, 3 d_model)


class ElmoTaskModel(NamedHeads):
    """``backbone`` (:class:`ElmoFeatures`) plus fine-tuning heads, the ELMo counterpart of ``LanguageModel``.

    A head with a task biLSTM (``"encoder": "bilstm"``) gets the token vectors with the mix.

    Args:
        spec: the biLM's sizes.
        task_heads: heads by name, each ``{"kind", "n_classes", "dropout"}`` (stored in ``model.json``).
        chars: the char CNN's character table (None when a checkpoint will fill it).
    """

    family = "elmo"
    spec: ElmoSpec

    def __init__(self, spec: ElmoSpec, task_heads: Mapping[str, dict], chars: torch.Tensor | None = None):
        super().__init__()
        self.spec = spec
        with_tokens = any(desc.get("encoder") == "bilstm" for desc in task_heads.values())
        self.backbone = ElmoFeatures(spec, chars, with_tokens)
        self.pretraining_heads: list[str] = []
        self.task_heads = {name: dict(desc) for name, desc in task_heads.items()}
        self.heads = nn.ModuleDict(
            {name: build_task_head(desc, self.backbone.d_out) for name, desc in self.task_heads.items()}
        )


def bilm_state(pretrained: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pretrained ``ElmoLanguageModel`` state dict renamed for :class:`ElmoTaskModel` (its softmax dropped)."""
    return {BILM_PREFIX + k[len("backbone.") :]: v for k, v in pretrained.items() if k.startswith("backbone.")}


def build_elmo_task_model(
    spec: ElmoSpec, task_heads: Mapping[str, dict], pretrained: Mapping[str, torch.Tensor] | None
) -> ElmoTaskModel:
    """An :class:`ElmoTaskModel` whose biLM holds ``pretrained`` weights (None: random, for tests)."""
    model = ElmoTaskModel(spec, task_heads)
    if pretrained is not None:
        result = model.load_state_dict(bilm_state(pretrained), strict=False)
        missing = [k for k in result.missing_keys if k.startswith(BILM_PREFIX)]
        if missing:
            raise ValueError(f"pretrained biLM weights lack {missing[:5]}")
    return model
