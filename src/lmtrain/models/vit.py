"""A Vision Transformer (Dosovitskiy et al. 2021) as ALBEF's image encoder.

Patch embedding (a strided convolution), a learned [CLS] vector, learned positions, pre-norm
Transformer blocks (the project's :class:`lmtrain.models.transformer.Block`) and a final norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lmtrain.kernels import Dropout
from lmtrain.models.spec import StoredSpec, TransformerSpec
from lmtrain.models.transformer import Block


@dataclass(frozen=True)
class VisionSpec(StoredSpec):
    """Every size of the image encoder, resolved; stored in ``model.json``."""

    image_size: int = 32  # square input images of this many pixels per side
    patch_size: int = 8  # square patches: (image_size / patch_size) ** 2 of them
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 2
    d_ff: int = 512
    dropout: float = 0.0  # ALBEF's ViT trains without dropout
    layer_norm_eps: float = 1e-6
    init_std: float = 0.02

    @property
    def n_patches(self) -> int:
        """Patches per image."""
        return (self.image_size // self.patch_size) ** 2

    def block_spec(self) -> TransformerSpec:
        """The pre-norm Transformer spec the ViT's blocks are built from."""
        return TransformerSpec(
            vocab_size=1,
            n_layers=self.n_layers,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            norm="pre",
            activation="gelu",
            dropout=self.dropout,
            attention_dropout=self.dropout,
            layer_norm_eps=self.layer_norm_eps,
            init_std=self.init_std,
            segment_vocab_size=0,
        )


class VisionTransformer(nn.Module):
    """Images (B, 3, H, W) -> states (B, 1 + n_patches, D); position 0 is [CLS].

    Args:
        spec: the image encoder's sizes.
    """

    def __init__(self, spec: VisionSpec):
        super().__init__()
        self.spec = spec
        self.patch = nn.Conv2d(3, spec.d_model, kernel_size=spec.patch_size, stride=spec.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, spec.d_model))
        self.position = nn.Parameter(torch.zeros(1, 1 + spec.n_patches, spec.d_model))
        self.dropout = Dropout(spec.dropout)
        block_spec = spec.block_spec()
        self.blocks = nn.ModuleList(Block(block_spec) for _ in range(spec.n_layers))
        self.norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=spec.init_std)
                nn.init.zeros_(module.bias)
        # timm's ViT init: a near-zero [CLS] vector, so that at the start the [CLS] state is what it
        # gathers from the patches rather than one constant for every image (which, trained from
        # scratch with a contrastive loss, collapses every image feature onto one point).
        nn.init.normal_(self.cls, std=1e-6)
        nn.init.trunc_normal_(self.position, std=spec.init_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode normalised ``images`` (B, 3, S, S) with S = ``spec.image_size``."""
        B = images.shape[0]
        x = self.patch(images).flatten(2).transpose(1, 2)  # (B, P, D)
        x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1) + self.position  # (B, 1 + P, D)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, None, False)
        return self.norm(x)
