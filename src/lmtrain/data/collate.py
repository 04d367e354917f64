"""Turn a list of examples into a padded batch of tensors (padding only: no other work here)."""

from __future__ import annotations

import numpy as np
import torch

from lmtrain.data.masking import IGNORE_INDEX

# sequence fields padded with something other than 0
_PAD_VALUES = {"labels": IGNORE_INDEX}


class PadCollator:
    """Pad every sequence field to the longest example and add ``attention_mask``.

    Args:
        pad_id: padding id of ``input_ids``.
        pad_to_multiple_of: round the padded length up (helps tensor-core kernels on GPU).
    """

    def __init__(self, pad_id: int, pad_to_multiple_of: int = 1):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """Padded batch: (B, T) int64 sequence fields, (B,) scalar fields."""
        lengths = [len(e["input_ids"]) for e in examples]
        width = -(-max(lengths) // self.multiple) * self.multiple
        batch: dict[str, torch.Tensor] = {}
        for key, value in examples[0].items():
            if isinstance(value, np.ndarray):
                pad = self.pad_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
                array = np.full((len(examples), width), pad, dtype=np.int64)
                for i, e in enumerate(examples):
                    array[i, : len(e[key])] = e[key]
                batch[key] = torch.from_numpy(array)
            else:
                batch[key] = torch.tensor([e[key] for e in examples])
        mask = np.zeros((len(examples), width), dtype=bool)
        for i, n in enumerate(lengths):
            mask[i, :n] = True
        batch["attention_mask"] = torch.from_numpy(mask)
        return batch
