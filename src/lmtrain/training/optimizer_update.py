"""What the training step does once the window's gradients are in: unscale, clip, step, zero.

On CPU a large word embedding's gradient is the costliest part of that which does not depend on
the batch: its backward allocates and zero-fills a dense gradient of the whole vocabulary every
step (47 MB for a 30k-word, 384-wide embedding), clipping reads all of it, scales all of it, and
``zero_grad`` frees it; yet a batch of short sentences touches a few hundred of its rows.
:class:`TouchedRows` keeps that gradient as one dense buffer across steps, has the embedding's
backward add only the touched rows into it (a sparse gradient accumulated into the dense buffer),
clips reading only those rows, and zeroes only those rows after the step. The optimizer still sees
the dense gradient: AdamW updates every row of the parameter, decaying the moments of the rows
without a gradient this step, as before.
"""

from __future__ import annotations

import torch
from torch import nn

# An embedding at least this large (in elements) gets its gradient rows tracked: below it the
# dense gradient costs less than tracking it (4 MB of float32).
TOUCHED_ROWS_MIN_NUMEL = 1 << 20


class TouchedRows:
    """An embedding's gradient as a persistent dense buffer that only the rows its inputs hit ever reach.

    The embedding is switched to sparse gradients (``nn.Embedding.sparse``); autograd adds each
    backward's sparse gradient into the dense buffer in place (union over micro-batches). A hook
    on the weight records the rows; a dense gradient reaching it (a use other than the lookup,
    such as a tied output matrix) marks every row touched, which stays exact.
    """

    def __init__(self, embedding: nn.Embedding):
        self.embedding, self.weight = embedding, embedding.weight
        embedding.sparse = True
        self._rows: list[torch.Tensor] = []
        self._all_rows = False
        self._unique: torch.Tensor | None = None
        self._hook = self.weight.register_hook(self._record)

    def close(self) -> None:
        """Give the embedding back as it was: dense gradients, no hook, no gradient buffer."""
        self._hook.remove()
        self.embedding.sparse = False
        self.weight.grad = None

    def _record(self, grad: torch.Tensor) -> None:
        if grad.is_sparse:
            self._rows.append(grad._indices()[0])
        else:
            self._all_rows = True
        self._unique = None

    def prepare(self) -> None:
        """Give the weight its dense gradient buffer before a backward (a fresh one when none is there)."""
        grad = self.weight.grad
        if grad is None:
            self.weight.grad = torch.zeros_like(self.weight)
            self._rows, self._all_rows, self._unique = [], False, None
        elif grad.is_sparse:  # a backward outside the training step left its sparse gradient
            self.weight.grad = grad.to_dense()
            self._all_rows = True

    def rows(self) -> torch.Tensor | None:
        """The rows that may be non-zero, each once, or None when any row may be."""
        if self._all_rows or self.weight.grad is None or self.weight.grad.is_sparse:
            return None
        if self._unique is None:
            found = torch.cat(self._rows) if self._rows else self.weight.new_empty(0, dtype=torch.long)
            self._unique = torch.unique(found)
        return self._unique

    def nonzero_part(self) -> torch.Tensor:
        """A tensor holding every non-zero of the gradient (its touched rows), for the clipping norm."""
        grad = self.weight.grad
        assert grad is not None
        rows = self.rows()
        return grad if rows is None else grad.index_select(0, rows)

    def scale_(self, factor: torch.Tensor) -> None:
        """Multiply the gradient by ``factor`` (a one-element tensor), touching only its non-zero rows."""
        grad = self.weight.grad
        assert grad is not None
        rows = self.rows()
        if rows is None:
            grad.mul_(factor)
        else:
            grad.index_copy_(0, rows, grad.index_select(0, rows).mul_(factor))

    def take_and_zero(self) -> torch.Tensor | None:
        """The gradient buffer with its touched rows zeroed (every row when any may be), ready for the next step."""
        grad = self.weight.grad
        if grad is None or grad.is_sparse:
            return None
        rows = self.rows()
        if rows is None:
            grad.zero_()
        else:
            grad.index_fill_(0, rows, 0)
        self._rows, self._all_rows, self._unique = [], False, None
        return grad


def row_tracked_embeddings(model: nn.Module, min_numel: int | None = None) -> list[nn.Embedding]:
    """The embeddings of ``model`` whose gradients :class:`TouchedRows` may keep: large, trained, dense, untied.

    A weight registered under two names (an output matrix tied to the embedding) gets a dense
    gradient every step, so tracking its rows would save nothing: it keeps the plain path.
    ``min_numel`` defaults to :data:`TOUCHED_ROWS_MIN_NUMEL`.
    """
    least = TOUCHED_ROWS_MIN_NUMEL if min_numel is None else min_numel
    uses: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        uses[id(param)] = uses.get(id(param), 0) + 1
    return [
        module
        for module in model.modules()
        if isinstance(module, nn.Embedding)
        and module.weight.requires_grad
        and not module.sparse
        and not module.scale_grad_by_freq
        and module.weight.numel() >= least
        and uses.get(id(module.weight)) == 1
    ]


class OptimizerUpdate:
    """Unscale (fp16), clip to ``grad_clip`` (0: off), step and zero the gradients of ``model``.

    With ``lean`` (the trainer asks for it in a single uncompiled process on CPU) the large
    embeddings keep their gradients as :class:`TouchedRows`, and a fused optimizer divides the
    gradients by the inverse of the clipping factor as it reads them (its ``grad_scale``) instead of
    a separate pass scaling them: updates equal the plain path's within float rounding. Otherwise
    this is exactly ``clip_grad_norm_`` + ``optimizer.step()`` + ``zero_grad(set_to_none=True)``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        grad_clip: float,
        scaler: torch.amp.GradScaler | None = None,
        lean: bool = False,
        min_numel: int | None = None,
    ):
        self.optimizer, self.grad_clip, self.scaler = optimizer, grad_clip, scaler
        self.params = list(model.parameters())
        self.tracked = [TouchedRows(e) for e in row_tracked_embeddings(model, min_numel)] if lean else []
        # fused Adam(W) divides each gradient by `grad_scale` as it reads it (GradScaler's hook)
        self.fold_clip = lean and scaler is None and getattr(optimizer, "_step_supports_amp_scaling", False)
        tracked = {id(t.weight) for t in self.tracked}
        self.others = [p for p in self.params if id(p) not in tracked]

    def close(self) -> None:
        """End the tracking (the trainer does when ``fit`` ends): from here on this is the plain path."""
        for rows in self.tracked:
            rows.close()
        self.tracked, self.others = [], self.params

    def before_backward(self) -> None:
        """Ready the tracked gradient buffers for the window's backward passes."""
        for rows in self.tracked:
            rows.prepare()

    def apply(self) -> None:
        """Unscale, clip, step, then zero every gradient (the tracked ones row by row)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        factor = self.clip() if self.grad_clip > 0 else None
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif factor is not None:
            self.optimizer.grad_scale = factor.reciprocal().float()  # type: ignore[attr-defined]
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.grad_scale  # type: ignore[attr-defined]
        else:
            self.optimizer.step()
        kept = [(rows.weight, rows.take_and_zero()) for rows in self.tracked]
        self.optimizer.zero_grad(set_to_none=True)
        for weight, grad in kept:
            weight.grad = grad

    def clip(self) -> torch.Tensor | None:
        """``clip_grad_norm_`` over every parameter, reading and scaling only the touched rows of tracked ones.

        Returns the clipping factor when the optimizer step is to apply it (``fold_clip``), else None.
        """
        if not self.tracked and not self.fold_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            return None
        grads = [p.grad for p in self.others if p.grad is not None]
        tracked = [rows for rows in self.tracked if rows.weight.grad is not None]
        total = torch.nn.utils.get_total_norm(grads + [rows.nonzero_part() for rows in tracked])
        factor = torch.clamp(self.grad_clip / (total + 1e-6), max=1.0)  # clip_grad_norm_'s expression
        if self.fold_clip:
            return factor
        if grads:
            torch._foreach_mul_(grads, factor)
        for rows in tracked:
            rows.scale_(factor)
        return None
