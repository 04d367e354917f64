"""Skipping a padded training batch's padding (``trainer.packing``).

A batch of short sentences drawn at random is mostly padding. The backbone instead runs its
token-wise layers (embeddings, projections, feed-forward, norms, dropout) on the batch's real tokens
alone, each keeping its position id, and places them in rows only for attention: the padded rows, or,
where that saves enough of them, fewer rows of the same length T packed first-fit decreasing, each token
attending only to the tokens of its own sentence (and, causally, only to earlier ones). The same math as
the padded forward on fewer tokens. The states are then scattered back to the padded (B, T, D) layout,
zeros at padding, so heads and objectives are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lmtrain.config.training import PACKING_MODES
from lmtrain.errors import UserError

if TYPE_CHECKING:
    from lmtrain.models.transformer import Transformer


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


@dataclass
class Unpadding:
    """The real tokens of a padded (B, T) batch, which token-wise layers run on alone, and the rows attention
    runs them in: the padded rows, or a packing's fewer rows (each sentence in a block of its own).

    Attributes:
        real: (B, T) bool, True at the real tokens.
        source: (N,) flat indices into the padded (B * T) batch of its N real tokens, row-major.
        packing: the packing whose rows attention runs in; None for the padded rows.
    """

    real: torch.Tensor
    source: torch.Tensor
    packing: PackingPlan | None = None

    @property
    def batch(self) -> int:
        """B, the padded batch's rows."""
        return self.real.shape[0]

    @property
    def length(self) -> int:
        """T, the columns of the padded rows and of attention's."""
        return self.real.shape[1]

    @property
    def rows(self) -> int:
        """The rows attention runs in."""
        return self.batch if self.packing is None else self.packing.rows

    @property
    def slots(self) -> torch.Tensor:
        """(N,) flat indices of the real tokens in attention's (rows * T) layout, in ``source``'s order."""
        return self.source if self.packing is None else self.packing.target

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """The real tokens' entries of a padded (B, T, ...) tensor: (N, ...)."""
        return values.reshape(self.batch * self.length, *values.shape[2:]).index_select(0, self.source)

    def scatter(self, states: torch.Tensor) -> torch.Tensor:
        """(N, ...) states of the real tokens in the padded (B, T, ...) layout, zeros at padding (differentiable)."""
        return _place(states, self.source, self.batch, self.length)

    def to_attention_rows(self, states: torch.Tensor) -> torch.Tensor:
        """(N, ...) states in attention's (rows, T, ...) layout, zeros at the empty slots (differentiable)."""
        return _place(states, self.slots, self.rows, self.length)

    def from_attention_rows(self, states: torch.Tensor) -> torch.Tensor:
        """The real tokens' entries of attention's (rows, T, ...) output: (N, ...)."""
        return states.reshape(self.rows * self.length, *states.shape[2:]).index_select(0, self.slots)


def _place(states: torch.Tensor, index: torch.Tensor, rows: int, length: int) -> torch.Tensor:
    rest = states.shape[1:]
    placed = states.new_zeros(rows * length, *rest).index_copy(0, index, states)
    return placed.view(rows, length, *rest)


def skips_padding(real: int, slots: int, mode: str) -> bool:
    """Whether ``mode`` skips the padding of a batch of ``slots`` token slots holding ``real`` real tokens:
    ``off`` never, ``on`` whenever there is some, ``auto`` from 1/16 of the slots."""
    if mode == "off" or real == slots or real == 0:
        return False
    return mode == "on" or 16 * real <= 15 * slots


def plan_unpadding(attention_mask: torch.Tensor, mode: str) -> Unpadding | None:
    """How a padded training batch whose (B, T) ``attention_mask`` marks its real tokens skips its padding,
    or None where ``mode`` does not: ``off`` never, ``on`` whenever there is some, ``auto`` from 1/16 of the
    slots. Attention runs in packed rows where :func:`plan_packing` packs the batch, else in the padded rows."""
    if mode == "off":
        return None
    real = attention_mask.bool()
    n, slots = int(real.sum()), real.numel()
    if not skips_padding(n, slots, mode):
        return None
    packing = plan_packing(attention_mask, mode)
    if packing is not None:
        return Unpadding(real, packing.source, packing)
    return Unpadding(real, real.reshape(-1).nonzero().squeeze(1))


def _packing_backbones(model: nn.Module) -> list[Transformer]:
    """The backbones of ``model`` that pack: exactly :class:`lmtrain.models.transformer.Transformer`."""
    from lmtrain.models.transformer import Transformer

    return [module for module in model.modules() if type(module) is Transformer]


def packing_mode(model: nn.Module) -> str:
    """The packing mode :func:`set_packing` gave ``model``'s backbones; ``off`` where none of them packs."""
    backbones = _packing_backbones(model)
    return backbones[0].packing if backbones else "off"


def set_packing(model: nn.Module, mode: str) -> int:
    """Set the packing mode (``trainer.packing``: auto | on | off) of every Transformer backbone in ``model``.

    Only backbones of exactly :class:`lmtrain.models.transformer.Transformer` pack: subclasses
    such as ALBEF's text-fusion encoder (whose fusion blocks cross-attend to image states, and
    which never runs ``Transformer.forward``) are left unpacked. Call once on the assembled model,
    before any wrapper (DDP, FSDP, compile). Returns how many backbones were set.
    """
    if mode not in PACKING_MODES:
        raise ValueError(f"packing mode must be one of {' | '.join(PACKING_MODES)}, not {mode!r}")
    backbones = _packing_backbones(model)
    for backbone in backbones:
        backbone.packing = mode
    return len(backbones)


# why trainer.packing=on is refused for a model without a packing backbone (at the config check or once built)
WHY_NOTHING_PACKS = (
    "packing skips the padding of a Transformer's batch; ELMo's LSTMs, ALBEF's "
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
