"""Where image-caption pairs come from: the generated shapes set, or the user's captions files.

A held-out set is either given (its own captions file) or a share of the training images (all
captions of an image stay on one side of the split).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lmtrain.data.captions import CaptionPair, pre_caption, read_captions
from lmtrain.data.hf_tokenizer import load_tokenizer_source
from lmtrain.data.image_text import load_pair_images
from lmtrain.data.shapes import shape_scenes
from lmtrain.data.store import fingerprint
from lmtrain.data.tokenizer import (
    TextTokenizer,
    cached_tokenizer,
    special_roles,
    tokenizer_fingerprint,
    train_tokenizer,
)
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

SHAPES_SIDE = 64  # pixels of a rendered scene; the model's input size is set by model.image_size


@dataclass
class ImageCaptionData:
    """Training and held-out pairs, their images (by key) and where they came from."""

    train: list[CaptionPair]
    eval: list[CaptionPair]
    images: dict[str, Image.Image] = field(default_factory=dict)
    source: str = ""


def _shapes(n_train: int, n_eval: int, seed: int) -> ImageCaptionData:
    images: dict[str, Image.Image] = {}
    splits = []
    for split, n, split_seed in (("train", n_train, seed), ("eval", n_eval, seed + 1)):
        pairs = []
        for i, (img, caption) in enumerate(shape_scenes(n, split_seed, SHAPES_SIDE, unique=split == "eval")):
            key = f"shapes/{split}/{i}"
            images[key] = img
            pairs.append(CaptionPair(key, caption, i))
        splits.append(pairs)
    return ImageCaptionData(splits[0], splits[1], images, f"generated shapes (seed {seed})")


def hold_out_images(
    pairs: list[CaptionPair], fraction: float, seed: int, source: str
) -> tuple[list[CaptionPair], list[CaptionPair]]:
    """Split ``pairs`` by image: about ``fraction`` of the images (with all their captions) held out."""
    image_ids = sorted({p.image_id for p in pairs})
    n_eval = max(1, round(len(image_ids) * fraction))
    if not 0 < fraction < 1 or n_eval >= len(image_ids):
        raise UserError(
            f"{source} has {len(image_ids)} images: too few to hold out data.eval_fraction={fraction} "
            "of them; give a held-out captions file or add images."
        )
    held = set(random.Random(seed).sample(image_ids, n_eval))
    return [p for p in pairs if p.image_id not in held], [p for p in pairs if p.image_id in held]


def _renumber(pairs: list[CaptionPair]) -> list[CaptionPair]:
    """Image ids 0..N-1 in order of first appearance (ids of different files must not collide)."""
    ids: dict[str, int] = {}
    return [CaptionPair(p.image, p.caption, ids.setdefault(p.image, len(ids))) for p in pairs]


def load_image_caption_data(
    source: str,
    train_files: list[str],
    eval_files: list[str],
    image_root: str | None,
    eval_fraction: float,
    split_seed: int,
    image_size: int,
    skip_bad: bool,
    shapes_train: int = 4000,
    shapes_eval: int = 200,
    key: str = "data.train_files",
    allow_outside_root: bool = False,
) -> ImageCaptionData:
    """The pairs and images of ``source``: ``shapes`` (generated) or ``files`` (captions files).

    Args:
        train_files, eval_files: captions files (ALBEF JSON, CSV ``image,caption`` or TSV); no eval
            file = hold out ``eval_fraction`` of the training images.
        image_root: folder the image paths are relative to (None = each file's folder).
        image_size: the model's input side (images are kept at twice that).
        skip_bad: skip pairs of missing or unreadable images instead of failing.
        key: the config key naming the training files (for error messages).
        allow_outside_root: accept image paths that lead outside the image root.
    """
    if source == "shapes":
        return _shapes(shapes_train, shapes_eval, split_seed)
    if source != "files":
        raise UserError(f"data.source={source} is not an image-caption source; use shapes or files.")
    if not train_files:
        raise UserError(
            f"{key} is empty: give a captions file (ALBEF JSON, CSV with `image,caption`, or "
            "`image<TAB>caption` lines) and data.image_root=<folder of the images>."
        )
    train = [p for f in train_files for p in read_captions(f, image_root, key, allow_outside_root)]
    if eval_files:
        held = [
            p
            for f in eval_files
            for p in read_captions(f, image_root, key.replace("train", "eval"), allow_outside_root)
        ]
    else:
        train, held = hold_out_images(_renumber(train), eval_fraction, split_seed, str(train_files[0]))
    train, held = _renumber(train), _renumber(held)
    train, images = load_pair_images(train, image_size, skip_bad)
    held, held_images = load_pair_images(held, image_size, skip_bad)
    return ImageCaptionData(train, held, {**images, **held_images}, ", ".join(map(str, train_files)))


def caption_tokenizer(data: ImageCaptionData, tok_cfg, max_words: int, cache_dir: str | None = None) -> TextTokenizer:
    """``tokenizer.path`` if set, else a tokenizer trained on the cleaned training captions.

    With ``cache_dir`` the trained tokenizer is kept under a hash of the captions and the tokenizer
    settings and read back by later runs: `tokenizers` may break ties between equally frequent
    merges differently from one training to the next, so only a cached tokenizer gives the same
    captions the same ids (and the same run) every time.
    """
    roles = special_roles(tok_cfg)
    if tok_cfg.path:
        return load_tokenizer_source(tok_cfg.path, roles)
    captions = [pre_caption(p.caption, max_words) for p in data.train]
    if cache_dir is None:
        return train_tokenizer(captions, tok_cfg)
    key = fingerprint("caption-tokenizer", captions, tokenizer_fingerprint(tok_cfg))
    path = Path(cache_dir).expanduser() / "tokenizers" / key / "tokenizer.json"
    return cached_tokenizer(path, roles, lambda: train_tokenizer(captions, tok_cfg))
