"""GloVe's sampled zero cells (as in Swivel, Shazeer et al., 2016): for each entry of a batch, cells (i, j)
with j drawn from the unigram distribution ** 0.75, fitted one-sidedly where X is zero (see
:mod:`lmtrain.embeddings.glove` for why a small corpus needs them)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class ZeroCellSampler:
    """Sampled cells (i, j): i a word of the batch, j drawn from the unigram distribution ** 0.75.

    Only cells that are zero in X count: a drawn cell that was observed gets weight 0, since its
    own entry already fits it (on a dense toy corpus almost every draw is observed, and pushing
    those down would fight the counts).

    Args:
        cooc: the co-occurrence matrix; its row sums stand for the word counts.
        negatives: cells per entry (0 = none).
        zero_count: a sampled cell's predicted count is pushed down to this when above it.
        zero_weight: f of a sampled cell whose prediction is above log(zero_count).
        seed: seeds the draws (on the CPU, so any device gives the same cells).
        device: where the batches are.
    """

    def __init__(
        self,
        cooc: sp.coo_matrix,
        negatives: int,
        zero_count: float,
        zero_weight: float,
        seed: int,
        device: torch.device = torch.device("cpu"),
    ):
        counts = np.asarray(cooc.sum(axis=1), dtype=np.float64).ravel()
        self.probs = torch.from_numpy(counts**0.75)
        self.negatives, self.weight = negatives, zero_weight
        self.log_count = float(np.log(zero_count))
        self.gen = torch.Generator().manual_seed(seed)
        self.vocab_size = cooc.shape[0]
        keys = np.sort(cooc.row.astype(np.int64) * self.vocab_size + cooc.col)  # (nnz,) i * V + j
        self.observed = torch.from_numpy(keys).to(device)

    def _unobserved(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(N,) True where X[rows, cols] is zero."""
        keys = rows * self.vocab_size + cols
        at = torch.searchsorted(self.observed, keys).clamp_(max=len(self.observed) - 1)
        return self.observed[at] != keys

    def extend(
        self, rows: torch.Tensor, cols: torch.Tensor, log_x: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The batch with its sampled cells appended, and the (B,) mask of the sampled cells.

        Returns:
            (rows, cols, log_x, weight, one_sided); one_sided is None when nothing is sampled.
        """
        if self.negatives == 0 or len(rows) == 0:
            return rows, cols, log_x, weight, None
        zero_rows = rows.repeat(self.negatives)
        zero_cols = torch.multinomial(self.probs, len(zero_rows), replacement=True, generator=self.gen).to(rows.device)
        zero_weight = self._unobserved(zero_rows, zero_cols).to(weight.dtype) * self.weight
        # one-sided: a cell never observed may still be a pair the corpus is too small to show
        one_sided = torch.arange(len(rows) + len(zero_rows), device=rows.device) >= len(rows)
        return (
            torch.cat([rows, zero_rows]),
            torch.cat([cols, zero_cols]),
            torch.cat([log_x, torch.full_like(zero_weight, self.log_count)]),
            torch.cat([weight, zero_weight]),
            one_sided,
        )
