"""ALBEF (Li et al. 2021, "Align before Fuse"): an image encoder, a text encoder and a fusion encoder.

    image -> ViT -> patch states ----------------------------+
    text  -> the first BERT layers (text encoder) -> states -> the remaining BERT layers with
             cross-attention to the patch states (fusion encoder) -> ITM head / MLM head
    [CLS] of image and text -> projections -> normalised features (contrastive loss)

Momentum (EMA) copies of the encoders, projections and MLM head give the distillation targets, and
feature queues hold the momentum features of recent batches as extra contrastive negatives. The
copies and the queues are buffers or frozen parameters, so checkpoints hold them and a resumed run
continues exactly. Losses live in :mod:`lmtrain.objectives.image_text`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.config.models import AlbefConfig
from lmtrain.kernels import Linear
from lmtrain.models.heads import MaskedLMHead
from lmtrain.models.protocol import NamedHeads
from lmtrain.models.spec import StoredSpec, TransformerSpec
from lmtrain.models.transformer import Block, Transformer
from lmtrain.models.vit import VisionSpec, VisionTransformer


@dataclass(frozen=True)
class AlbefSpec(StoredSpec):
    """Everything that shapes an ALBEF model; stored in ``model.json``.

    ``text.n_layers`` counts every BERT layer; the last ``fusion_layers`` of them cross-attend
    to the image (ALBEF-base: 12 layers, 6 fusion).
    """

    text: TransformerSpec
    vision: VisionSpec
    fusion_layers: int = 1
    embed_dim: int = 64  # width of the shared image-text feature space
    queue_size: int = 1024  # momentum features kept as extra contrastive negatives
    momentum: float = 0.995  # EMA coefficient of the momentum encoders
    temp: float = 0.07  # initial contrastive temperature (learned, clamped to [0.001, 0.5])

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlbefSpec:
        """Rebuild from :meth:`to_dict` output (the two nested specs rebuilt as theirs)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"text", "vision"}
        return cls(
            text=TransformerSpec.from_dict(values["text"]),
            vision=VisionSpec.from_dict(values["vision"]),
            **{k: v for k, v in values.items() if k in known},
        )


class TextFusionEncoder(Transformer):
    """BERT split in two: text layers, then fusion layers that also cross-attend to image states.

    Args:
        spec: the whole BERT (``n_layers`` text + fusion layers).
        fusion_layers: how many of the last layers get cross-attention.
        context_width: width of the image states.
    """

    def __init__(self, spec: TransformerSpec, fusion_layers: int, context_width: int):
        super().__init__(spec)
        self.n_text_layers = spec.n_layers - fusion_layers
        for i in range(self.n_text_layers, spec.n_layers):
            block = Block(spec, cross_attention_width=context_width)
            block.apply(self._init_weights)
            self.blocks[i] = block

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text-only states (B, T, D) of the text layers."""
        T = input_ids.shape[1]
        mask, is_causal = self.attention_mask(attention_mask, T, T)
        position_ids = torch.arange(T, device=input_ids.device)[None, :]  # (1, T)
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        for block in self.blocks[: self.n_text_layers]:
            x = block(x, mask, is_causal)
        return x

    def fuse(self, text_states: torch.Tensor, attention_mask: torch.Tensor, image_states: torch.Tensor) -> torch.Tensor:
        """Fused states (B, T, D): the fusion layers over ``text_states`` with cross-attention to ``image_states``."""
        T = text_states.shape[1]
        mask, is_causal = self.attention_mask(attention_mask, T, T)
        x = text_states
        for block in self.blocks[self.n_text_layers :]:
            x = block(x, mask, is_causal, context=image_states)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x


def gather_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` of every rank concatenated on dim 0 (itself without ``torch.distributed``); no gradient."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class AlbefModel(NamedHeads):
    """ALBEF's encoders, projections, ITM and MLM heads, momentum copies and feature queues.

    Objectives call the ``encode_*`` / ``fuse`` / feature methods; like :class:`LanguageModel`
    the model has no forward of its own.

    Args:
        spec: the sizes.
        head_names: ``("mlm",)`` for pretraining (masked LM conditioned on the image), ``()`` for retrieval.
    """

    family = "albef"
    spec: AlbefSpec
    # buffers: the feature queues (E, Q) and their slots' example ids (1, Q), the queue's write pointer (1,),
    # the optimizer steps done (1,)
    image_queue: torch.Tensor
    text_queue: torch.Tensor
    idx_queue: torch.Tensor
    queue_ptr: torch.Tensor
    steps_done: torch.Tensor

    def __init__(self, spec: AlbefSpec, head_names=("mlm",)):
        super().__init__()
        self.spec = spec
        self.pretraining_heads = list(head_names)
        self.task_heads: dict[str, dict] = {}
        self.visual = VisionTransformer(spec.vision)
        self.text = TextFusionEncoder(spec.text, spec.fusion_layers, spec.vision.d_model)
        self.vision_proj = Linear(spec.vision.d_model, spec.embed_dim)
        self.text_proj = Linear(spec.text.d_model, spec.embed_dim)
        self.itm_head = Linear(spec.text.d_model, 2)
        self.temp = nn.Parameter(torch.tensor(float(spec.temp)))
        self.heads = nn.ModuleDict(
            {
                name: MaskedLMHead(spec.text, self.text.embeddings.token)
                for name in self.pretraining_heads
                if name == "mlm"
            }
        )
        for linear in (self.vision_proj, self.text_proj, self.itm_head):
            nn.init.normal_(linear.weight, std=spec.text.init_std)
            nn.init.zeros_(linear.bias)
        # One deepcopy of all online modules keeps the MLM head tied to the copied token embedding.
        self.momentum = copy.deepcopy(nn.ModuleDict(self._online()))
        for param in self.momentum.parameters():
            param.requires_grad_(False)
        D, Q = spec.embed_dim, spec.queue_size
        self.register_buffer("image_queue", F.normalize(torch.randn(D, Q), dim=0))  # (D, Q)
        self.register_buffer("text_queue", F.normalize(torch.randn(D, Q), dim=0))  # (D, Q)
        self.register_buffer("idx_queue", torch.full((1, Q), -100, dtype=torch.long))  # (1, Q): -100 = empty slot
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("steps_done", torch.zeros(1, dtype=torch.long))  # optimizer steps, for the alpha ramp

    def _online(self) -> dict[str, nn.Module]:
        modules = {
            "visual": self.visual,
            "text": self.text,
            "vision_proj": self.vision_proj,
            "text_proj": self.text_proj,
        }
        if "mlm" in self.heads:
            modules["mlm"] = self.heads["mlm"]
        return modules

    def _momentum_pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        pairs, seen = [], set()
        for name, module in self._online().items():
            for online, momentum in zip(module.parameters(), self.momentum[name].parameters()):
                if id(online) not in seen:  # a tied matrix is averaged once
                    seen.add(id(online))
                    pairs.append((online, momentum))
        return pairs

    @torch.no_grad()
    def sync_momentum(self) -> None:
        """Set every momentum parameter to its online one (after loading online weights)."""
        for online, momentum in self._momentum_pairs():
            momentum.copy_(online)

    # ------------------------------------------------------------------ encoders
    def encode_image(self, images: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """Image states (B, 1 + P, Dv) of the online (or momentum) ViT."""
        return (self.momentum["visual"] if momentum else self.visual)(images)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, momentum: bool = False
    ) -> torch.Tensor:
        """Text-encoder states (B, T, D) of the online (or momentum) text layers."""
        return self._text_encoder(momentum).encode(input_ids, attention_mask)

    def fuse(
        self,
        text_states: torch.Tensor,
        attention_mask: torch.Tensor,
        image_states: torch.Tensor,
        momentum: bool = False,
    ) -> torch.Tensor:
        """Fusion-encoder states (B, T, D) of text conditioned on the image."""
        return self._text_encoder(momentum).fuse(text_states, attention_mask, image_states)

    def _text_encoder(self, momentum: bool) -> TextFusionEncoder:
        if not momentum:
            return self.text
        text = self.momentum["text"]
        assert isinstance(text, TextFusionEncoder), "the momentum modules are copies of the online ones"
        return text

    def image_features(self, image_states: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """Normalised image features (B, E) from the [CLS] state."""
        proj = self.momentum["vision_proj"] if momentum else self.vision_proj
        return F.normalize(proj(image_states[:, 0]), dim=-1)

    def text_features(self, text_states: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """Normalised text features (B, E) from the [CLS] state."""
        proj = self.momentum["text_proj"] if momentum else self.text_proj
        return F.normalize(proj(text_states[:, 0]), dim=-1)

    def itm_logits(self, fused: torch.Tensor) -> torch.Tensor:
        """Match / no-match logits (B, 2) from the fused [CLS] state."""
        return self.itm_head(fused[:, 0])

    def mlm_logits(self, hidden: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """Vocabulary logits (N, V) of selected fused states (N, D)."""
        return (self.momentum["mlm"] if momentum else self.heads["mlm"])(hidden)

    # ------------------------------------------------------------------ momentum and queues
    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_m <- m * theta_m + (1 - m) * theta for every momentum parameter; counts the step."""
        m = self.spec.momentum
        online, momentum = zip(*self._momentum_pairs())
        torch._foreach_mul_(momentum, m)  # one multi-tensor kernel per op, not two launches per parameter
        torch._foreach_add_(momentum, online, alpha=1.0 - m)
        self.steps_done += 1

    @torch.no_grad()
    def clamp_temperature(self) -> None:
        """Keep the learned temperature in [0.001, 0.5], as ALBEF does before every step."""
        self.temp.clamp_(0.001, 0.5)

    @torch.no_grad()
    def enqueue(self, image_feat: torch.Tensor, text_feat: torch.Tensor, idx: torch.Tensor) -> None:
        """Replace the oldest queue entries with this step's momentum features (of every rank).

        The queue is first in, first out: a pointer walks round it, so the entries written
        longest ago are overwritten first. Its size must be a multiple of the global batch.
        """
        image_feat, text_feat = gather_across_ranks(image_feat), gather_across_ranks(text_feat)
        idx = gather_across_ranks(idx)
        n, ptr = image_feat.shape[0], int(self.queue_ptr)
        if self.spec.queue_size % n:
            raise ValueError(f"queue size {self.spec.queue_size} is not a multiple of the global batch {n}")
        self.image_queue[:, ptr : ptr + n] = image_feat.T  # (E, n)
        self.text_queue[:, ptr : ptr + n] = text_feat.T
        self.idx_queue[:, ptr : ptr + n] = idx[None, :]
        self.queue_ptr[0] = (ptr + n) % self.spec.queue_size

    def num_parameters(self, include_embeddings: bool = True) -> int:
        """Distinct trainable parameters (momentum copies excluded, tied matrices once)."""
        seen = {id(p): p for p in self.parameters() if p.requires_grad}
        total = sum(p.numel() for p in seen.values())
        if not include_embeddings:
            total -= self.text.embeddings.token.weight.numel()
        return total


def resolve_vision_spec(model_cfg: AlbefConfig) -> VisionSpec:
    """The image encoder's :class:`VisionSpec` from the `model` config group (``model.vision_*``)."""
    return VisionSpec(
        image_size=model_cfg.image_size,
        patch_size=model_cfg.patch_size,
        n_layers=model_cfg.vision_layers,
        d_model=model_cfg.vision_d_model,
        n_heads=model_cfg.vision_n_heads,
        d_ff=model_cfg.vision_d_ff,
        init_std=model_cfg.init_std,
    )


def resolve_albef_spec(model_cfg: AlbefConfig, vocab_size: int, pad_token_id: int) -> AlbefSpec:
    """An :class:`AlbefSpec` from the `model` config group (``model.family=albef``).

    Raises:
        UserError: sizes that do not fit together (fusion layers, patches, heads).
    """
    from lmtrain.errors import UserError
    from lmtrain.models.spec import resolve_spec

    text = resolve_spec(model_cfg, vocab_size, pad_token_id)
    if not 1 <= model_cfg.fusion_layers < text.n_layers:
        raise UserError(
            f"model.fusion_layers={model_cfg.fusion_layers} must be at least 1 and below model.n_layers="
            f"{text.n_layers}: the first layers encode the text, the rest fuse it with the image."
        )
    if model_cfg.image_size % model_cfg.patch_size:
        raise UserError(
            f"model.image_size={model_cfg.image_size} is not a multiple of model.patch_size="
            f"{model_cfg.patch_size}; choose sizes that tile the image."
        )
    if model_cfg.vision_d_model % model_cfg.vision_n_heads:
        raise UserError(
            f"model.vision_d_model={model_cfg.vision_d_model} is not divisible by "
            f"model.vision_n_heads={model_cfg.vision_n_heads}."
        )
    if not 0.0 <= model_cfg.momentum < 1.0:
        raise UserError(f"model.momentum={model_cfg.momentum} must be in [0, 1).")
    return albef_spec_over(text, model_cfg)


def albef_spec_over(text: TransformerSpec, model_cfg: AlbefConfig) -> AlbefSpec:
    """ALBEF's spec around the text encoder ``text`` (its image encoder and fusion settings from ``model.*``)."""
    return AlbefSpec(
        text=text,
        vision=resolve_vision_spec(model_cfg),
        fusion_layers=model_cfg.fusion_layers,
        embed_dim=model_cfg.embed_dim,
        queue_size=model_cfg.queue_size,
        momentum=model_cfg.momentum,
        temp=model_cfg.temp,
    )
