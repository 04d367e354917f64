"""Tiny ALBEF models and image-caption batches shared by the ALBEF tests."""

from __future__ import annotations

import torch

from lmtrain.config import TokenizerConfig
from lmtrain.data.captions import CaptionPair
from lmtrain.data.image_text import ImageTextCollator, ImageTextDataset
from lmtrain.data.masking import MaskingSpec
from lmtrain.data.shapes import shape_scenes
from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.models.albef import AlbefModel, AlbefSpec
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.vit import VisionSpec

ROLES = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}


def tiny_spec(vocab_size: int = 60, queue_size: int = 16, momentum: float = 0.9) -> AlbefSpec:
    """A 2-layer (1 text + 1 fusion) BERT of width 32 and a 1-layer ViT on 16 px images."""
    text = TransformerSpec(
        vocab_size=vocab_size,
        n_layers=2,
        d_model=32,
        n_heads=2,
        d_ff=64,
        max_positions=32,
        dropout=0.0,
        attention_dropout=0.0,
    )
    vision = VisionSpec(image_size=16, patch_size=8, n_layers=1, d_model=32, n_heads=2, d_ff=64)
    return AlbefSpec(text=text, vision=vision, fusion_layers=1, embed_dim=16, queue_size=queue_size, momentum=momentum)


def tiny_model(vocab_size: int = 60, seed: int = 0, **kwargs) -> AlbefModel:
    torch.manual_seed(seed)
    return AlbefModel(tiny_spec(vocab_size, **kwargs))


def shapes_data(n: int = 64, seed: int = 0, train: bool = True, masking: bool = True):
    """(dataset, tokenizer) of ``n`` generated scenes at 16 px."""
    scenes = shape_scenes(n, seed, side=32)
    images = {f"s{i}": img for i, (img, _) in enumerate(scenes)}
    pairs = [CaptionPair(f"s{i}", caption, i) for i, (_, caption) in enumerate(scenes)]
    tokenizer = train_tokenizer(
        [c for _, c in scenes], TokenizerConfig(vocab_size=200, min_frequency=1, special_tokens=ROLES)
    )
    spec = None
    if masking:
        spec = MaskingSpec(
            mask_id=tokenizer.id("mask"), vocab_size=tokenizer.vocab_size, special_ids=tuple(tokenizer.special_ids)
        )
    dataset = ImageTextDataset(
        pairs,
        images,
        tokenizer,
        image_size=16,
        max_seq_len=32,
        max_words=30,
        train=train,
        masking=spec,
        seed=seed,
        crop_min_scale=0.9,
    )
    return dataset, tokenizer


def batches(dataset, batch_size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    collate = ImageTextCollator(pad_id)
    return [
        collate([dataset[i] for i in range(start, start + batch_size)])
        for start in range(0, len(dataset) - batch_size + 1, batch_size)
    ]
