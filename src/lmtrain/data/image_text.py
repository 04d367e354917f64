"""Image-caption pairs as training examples: image tensor, caption ids, masked caption ids, image id.

Captions are cleaned (``pre_caption``) and tokenized once, together with their mirrored version
("left" and "right" swapped), so a flipped image always gets a caption that still describes it.
Random crops, flips and MLM masks are drawn from a generator seeded by (seed, epoch, index): the
same example in the same epoch looks the same, also after resuming.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lmtrain.data.captions import CaptionPair, pre_caption, swap_left_right
from lmtrain.data.collate import PadCollator
from lmtrain.data.images import eval_transform, load_image, train_transform
from lmtrain.data.masking import MaskingSpec, example_rng, mask_tokens
from lmtrain.errors import UserError

log = logging.getLogger(__name__)


def load_pair_images(
    pairs: Sequence[CaptionPair], image_size: int, skip_bad: bool
) -> tuple[list[CaptionPair], dict[str, Image.Image]]:
    """Read every image of ``pairs`` once (shrunk to twice ``image_size`` on the shorter side).

    Args:
        skip_bad: drop the pairs of missing or unreadable images (and log how many) instead of failing.
    Returns:
        (the pairs whose image loaded, image path -> image).
    Raises:
        UserError: a missing or unreadable image (without ``skip_bad``), naming the file; or no image at all.
    """
    images: dict[str, Image.Image] = {}
    bad: list[str] = []
    for path in dict.fromkeys(p.image for p in pairs):
        try:
            images[path] = load_image(path, keep_side=2 * image_size)
        except UserError:
            if not skip_bad:
                raise
            bad.append(path)
    kept = [p for p in pairs if p.image in images]
    if bad:
        log.warning(
            "skipped %d of %d images (missing or unreadable, e.g. %s) and their %d caption(s)",
            len(bad),
            len(bad) + len(images),
            bad[0],
            len(pairs) - len(kept),
        )
    if not kept:
        raise UserError("no image of the captions file could be read; check data.image_root.")
    return kept, images


def frame_captions(tokenizer, captions: list[str], max_seq_len: int) -> list[np.ndarray]:
    """Token ids of each caption framed as ``[CLS] ... [SEP]``, cut to ``max_seq_len`` (batched encoding)."""
    cls, sep = tokenizer.id("cls"), tokenizer.id("sep")
    return [np.asarray([cls, *ids[: max_seq_len - 2], sep], dtype=np.int64) for ids in tokenizer.encode_batch(captions)]


class ImageTextDataset(Dataset):
    """Examples ``{"image", "input_ids", "image_id"}`` (+ ``mlm_input_ids`` and ``labels`` with masking).

    Args:
        pairs: the image-caption pairs.
        images: image key -> image.
        tokenizer: a :class:`lmtrain.data.tokenizer.TextTokenizer` with cls, sep (and mask) roles.
        image_size: side of the square model input.
        max_seq_len: tokens per caption, [CLS] and [SEP] included.
        max_words: words kept by ``pre_caption``.
        train: random crops and flips (True) or a plain resize (False).
        masking: MLM corruption of the captions, or None.
        seed: seed of crops, flips and masks.
        crop_min_scale: smallest area share of a random crop.
        flip: allow horizontal flips (with "left" and "right" swapped in the caption).
    """

    def __init__(
        self,
        pairs: Sequence[CaptionPair],
        images: Mapping[str, Image.Image],
        tokenizer,
        image_size: int,
        max_seq_len: int,
        max_words: int,
        train: bool,
        masking: MaskingSpec | None = None,
        seed: int = 0,
        crop_min_scale: float = 0.5,
        flip: bool = True,
    ):
        self.pairs, self.images = list(pairs), images
        self.image_size, self.train, self.masking, self.seed = image_size, train, masking, seed
        self.crop_min_scale, self.flip = crop_min_scale, flip
        self.epoch = 0
        captions = [pre_caption(p.caption, max_words) for p in self.pairs]
        self.ids = frame_captions(tokenizer, captions, max_seq_len)
        self.mirrored_ids = (
            frame_captions(tokenizer, [swap_left_right(c) for c in captions], max_seq_len)
            if train and flip
            else self.ids
        )
        self.pool = masking.random_candidates() if masking is not None else None

    def set_epoch(self, epoch: int) -> None:
        """New crops, flips and masks every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        rng = example_rng(self.seed, self.epoch, index)
        img = self.images[pair.image]
        if self.train:
            flipped = self.flip and rng.random() < 0.5
            image = train_transform(img, self.image_size, rng, flipped, self.crop_min_scale)
            ids = self.mirrored_ids[index] if flipped else self.ids[index]
        else:
            image, ids = eval_transform(img, self.image_size), self.ids[index]
        example = {"image": image, "input_ids": ids, "image_id": pair.image_id}
        if self.masking is not None:
            example["mlm_input_ids"], example["labels"] = mask_tokens(ids, self.masking, rng, candidates_pool=self.pool)
        return example


class ImageTextCollator:
    """Stack the images (B, 3, S, S) and pad the caption fields (see :class:`PadCollator`)."""

    def __init__(self, pad_id: int):
        self.pad = PadCollator(pad_id)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """A batch with ``image``, ``input_ids``, ``attention_mask``, ``image_id`` (+ MLM fields)."""
        images = torch.stack([e["image"] for e in examples])
        batch = self.pad([{k: v for k, v in e.items() if k != "image"} for e in examples])
        batch["image"] = images
        return batch
