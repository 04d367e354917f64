"""Packing a padded training batch's sentences into fewer rows (``trainer.packing``).

A batch of short sentences drawn at random is mostly padding. The backbone instead places each
row's real tokens into rows of the same length T (first-fit decreasing), keeps every token's
position id, and lets each token attend only to the tokens of its own sentence (and, causally,
only to earlier ones): the same math as the padded forward on fewer tokens. The states are then
scattered back to the padded (B, T, D) layout, zeros at padding, so heads and objectives are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lmtrain.config.training import PACKING_MODES
from lmtrain.errors import UserError


@dataclass
class PackingPlan:
    """Where each real token of a padded (B, T) batch goes in the packed (R, T) batch.

    Attributes:
        rows: R, the packed batch's rows.
        source: (N,) flat indices into the padded (B * T) batch of its N real tokens.
        target: (N,) flat indices into the packed (R * T) batch, one per source token.
        sentence: (R, T) which padded row each packed slot holds; -1 at the slots left empty.
    """

    rows: int
    source: torch.Tensor
    target: torch.Tensor
    sentence: torch.Tensor


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[tuple[int, int]]:
    """(row, offset) for each length, placed longest first into the first row with room; (-1, 0) for 0."""
    placed = [(-1, 0)] * len(lengths)
    used: list[int] = []  # tokens already in each packed row
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        length = lengths[index]
        if length == 0:
            continue
        row = next((r for r, filled in enumerate(used) if filled + length <= capacity), len(used))
        if row == len(used):
            used.append(0)
        placed[index] = (row, used[row])
        used[row] += length
    return placed


def worth_packing(rows: int, batch_rows: int, mode: str) -> bool:
    """Whether ``mode`` packs a batch of ``batch_rows`` rows into ``rows``: ``auto`` when at most 3/4
    of them remain, ``on`` when at least one row is saved, ``off`` never."""
    if mode == "off" or rows == 0:
        return False
    if mode == "on":
        return rows < batch_rows
    return 4 * rows <= 3 * batch_rows


def plan_packing(attention_mask: torch.Tensor, mode: str) -> PackingPlan | None:
    """The packing of the padded batch whose (B, T) ``attention_mask`` marks its real tokens, or None
    where ``mode`` (auto | on | off) does not pack it (:func:`worth_packing`)."""
    if mode == "off":
        return None
    real = attention_mask.bool()
    B, T = real.shape
    lengths = real.sum(dim=1).tolist()
    placed = first_fit_decreasing(lengths, T)
    rows = 1 + max(row for row, _ in placed)
    if not worth_packing(rows, B, mode):
        return None
    device = attention_mask.device
    start = torch.tensor([row * T + offset for row, offset in placed], device=device)  # (B,)
    source = real.reshape(-1).nonzero().squeeze(1)  # (N,) row-major: each row's tokens in column order
    rank = real.long().cumsum(dim=1).reshape(-1)[source] - 1  # (N,) index of each token within its sentence
    target = start[source // T] + rank
    sentence = torch.full((rows * T,), -1, dtype=torch.long, device=device)
    sentence[target] = source // T
    return PackingPlan(rows, source, target, sentence.view(rows, T))


def pack(values: torch.Tensor, plan: PackingPlan, fill: int = 0) -> torch.Tensor:
    """A padded (B, T) tensor's real tokens in the packed (R, T) layout; ``fill`` at the empty slots."""
    T = values.shape[1]
    packed = values.new_full((plan.rows * T,), fill)
    packed[plan.target] = values.reshape(-1)[plan.source]
    return packed.view(plan.rows, T)


def unpack(states: torch.Tensor, plan: PackingPlan, batch_rows: int) -> torch.Tensor:
    """Packed (R, T, D) states back in the padded (B, T, D) layout, zeros at padding (differentiable)."""
    R, T, D = states.shape
    picked = states.reshape(R * T, D).index_select(0, plan.target)
    return states.new_zeros(batch_rows * T, D).index_copy(0, plan.source, picked).view(batch_rows, T, D)


def packed_attention_mask(plan: PackingPlan, causal: bool) -> torch.Tensor:
    """Boolean (R, 1, T, T) mask: a query sees the keys of its own sentence (causal: those not after it).

    Every query also sees itself, so no row is fully masked: an empty slot's all-False row would
    give NaN in SDPA, and NaN times its zero gradient is still NaN in the weights' gradients.
    """
    sentence = plan.sentence
    T = sentence.shape[1]
    mask = (sentence[:, :, None] == sentence[:, None, :]) & (sentence >= 0)[:, :, None]  # (R, Tq, Tk)
    slots = torch.arange(T, device=sentence.device)
    if causal:
        # tokens keep their column order inside a sentence, so slot order is the padded forward's order
        mask &= slots[None, :] <= slots[:, None]
    mask |= slots[None, :] == slots[:, None]
    return mask[:, None]


def set_packing(model: nn.Module, mode: str) -> int:
    """Set the packing mode (``trainer.packing``: auto | on | off) of every Transformer backbone in ``model``.

    Only backbones of exactly :class:`lmtrain.models.transformer.Transformer` pack: subclasses
    such as ALBEF's text-fusion encoder (whose fusion blocks cross-attend to image states, and
    which never runs ``Transformer.forward``) are left unpacked. Call once on the assembled model,
    before any wrapper (DDP, FSDP, compile). Returns how many backbones were set.
    """
    from lmtrain.models.transformer import Transformer

    if mode not in PACKING_MODES:
        raise ValueError(f"packing mode must be one of {' | '.join(PACKING_MODES)}, not {mode!r}")
    backbones = [module for module in model.modules() if type(module) is Transformer]
    for backbone in backbones:
        backbone.packing = mode
    return len(backbones)


# why trainer.packing=on is refused for a model without a packing backbone (at the config check or once built)
WHY_NOTHING_PACKS = (
    "packing places the padded sentences of a Transformer's batch into fewer rows; ELMo's LSTMs, ALBEF's "
    "encoders and other families' own backbones train unpacked"
)


def apply_packing(model: nn.Module, mode: str) -> None:
    """:func:`set_packing` on the assembled ``model``, refusing ``on`` where no backbone of it packs.

    Raises:
        UserError: ``trainer.packing=on`` for a model with no packing Transformer backbone (ELMo's LSTMs, ALBEF's
            encoders, a family of your own), naming the model's class.
    """
    if set_packing(model, mode) == 0 and mode == "on":
        raise UserError(
            f"trainer.packing=on: this {type(model).__name__} has no Transformer backbone that packs "
            f"({WHY_NOTHING_PACKS}). Leave trainer.packing at auto or set it to off."
        )
