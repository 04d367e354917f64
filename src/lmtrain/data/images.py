"""Images with Pillow and torch only: loading, ALBEF's training and evaluation transforms.

Training: random resized crop (area 50-100%, aspect 3/4-4/3, bicubic), horizontal flip (the
caller swaps "left" and "right" in the caption), normalise with CLIP's mean and std (as ALBEF).
Evaluation: resize to the square input size, normalise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lmtrain.errors import UserError

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)


def load_image(path: str | Path, keep_side: int | None = None) -> Image.Image:
    """An RGB image; with ``keep_side``, shrunk so its shorter side is at most that (saves memory and time).

    Raises:
        UserError: the file is missing or Pillow cannot read it, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"image {path} does not exist; check data.image_root and the paths in the captions file, "
            "or set data.skip_bad_images=true to skip pairs whose image is missing or unreadable."
        )
    try:
        with Image.open(path) as opened:
            if keep_side:
                opened.draft("RGB", (keep_side, keep_side))  # JPEG: decode at a reduced scale directly
            img = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise UserError(
            f"image {path} cannot be read ({error}); replace the file, or set "
            "data.skip_bad_images=true to skip pairs whose image is missing or unreadable."
        ) from None
    if keep_side and min(img.size) > keep_side:
        scale = keep_side / min(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC
        )
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(3, H, W) float tensor, normalised with CLIP's mean and std."""
    array = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # (H, W, 3)
    return (array.permute(2, 0, 1).float() / 255.0 - MEAN) / STD


def random_crop_box(
    width: int, height: int, rng: np.random.Generator, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """A (left, top, right, bottom) box of random area share and aspect ratio (torchvision's rule)."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    side = min(width, height)  # fall back to the central square
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def train_transform(
    img: Image.Image, size: int, rng: np.random.Generator, flip: bool, min_scale: float = 0.5
) -> torch.Tensor:
    """Random resized crop to ``size`` x ``size``, mirrored if ``flip``, normalised: (3, size, size)."""
    box = random_crop_box(img.width, img.height, rng, scale=(min_scale, 1.0))
    out = img.resize((size, size), Image.Resampling.BICUBIC, box=box)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(out)


def eval_transform(img: Image.Image, size: int) -> torch.Tensor:
    """Resize to ``size`` x ``size``, normalised: (3, size, size)."""
    return to_tensor(img.resize((size, size), Image.Resampling.BICUBIC))
