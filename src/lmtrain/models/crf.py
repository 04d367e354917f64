"""A linear-chain conditional random field over tag sequences (Lafferty et al. 2001).

A sequence's score is ``start[y_0] + sum_t emit[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_last]``;
training maximises its log-probability against all sequences (the forward algorithm, in log
space), prediction takes the best sequence (Viterbi). Both run over the whole batch at once and
loop only over positions. Sequences are left-aligned: ``mask`` (B, L) is a prefix of True per row.
"""

from __future__ import annotations

import torch
from torch import nn

# score of a forbidden transition: far below any real path, yet finite (no inf - inf = nan)
FORBIDDEN = -1.0e4


class LinearChainCRF(nn.Module):
    """Transition, start and end scores for ``n_tags`` tags, plus an optional mask of allowed transitions.

    Args:
        n_tags: number of tags.
    """

    allowed: torch.Tensor  # buffer (n_tags, n_tags): which transitions may occur

    def __init__(self, n_tags: int):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))  # [i, j]: tag i followed by tag j
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))
        # saved with the weights, so a checkpoint decodes under the same constraints it was trained with
        self.register_buffer("allowed", torch.ones(n_tags, n_tags, dtype=torch.bool))

    def constrain(self, allowed: torch.Tensor) -> None:
        """Forbid the transitions where ``allowed`` (n_tags, n_tags) is False (e.g. O -> I-PER under BIO)."""
        self.allowed.copy_(allowed.to(torch.bool))

    def _transitions(self) -> torch.Tensor:
        return self.transitions.masked_fill(~self.allowed, FORBIDDEN)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given ``tags`` (B, L) under ``emissions`` (B, L, C); returns (B,)."""
        trans = self._transitions()
        mask_f = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, L)
        score = self.start[tags[:, 0]] + (emitted * mask_f).sum(1)
        score = score + (trans[tags[:, :-1], tags[:, 1:]] * mask_f[:, 1:]).sum(1)
        last = (mask.sum(1) - 1).clamp(min=0)  # (B,)
        return score + self.end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log of the summed exp-scores of every tag sequence of each row's length; (B,)."""
        trans = self._transitions()
        alpha = self.start + emissions[:, 0]  # (B, C)
        for t in range(1, emissions.shape[1]):
            # (B, C, 1) + (C, C) + (B, 1, C) -> (B, C, C), summed over the previous tag
            step = torch.logsumexp(alpha.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(tags | emissions) per row (B,); rows without any position give 0.

        Args:
            emissions: (B, L, C) tag scores of each position.
            tags: (B, L) gold tag ids (any valid id at padding).
            mask: (B, L) True at real positions, left-aligned.
        """
        if emissions.shape[1] == 0:
            return emissions.new_zeros(emissions.shape[0])
        emissions = emissions.float()
        ll = self.path_score(emissions, tags, mask) - self.log_partition(emissions, mask)
        return torch.where(mask[:, 0], ll, torch.zeros_like(ll))

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The highest-scoring tag sequence of every row (Viterbi): (B, L) ids, 0 at padding."""
        batch, length, n_tags = emissions.shape
        if length == 0:
            return torch.zeros(batch, 0, dtype=torch.long, device=emissions.device)
        trans = self._transitions()
        emissions = emissions.float()
        score = self.start + emissions[:, 0]  # (B, C)
        stay = torch.arange(n_tags, device=emissions.device).expand(batch, n_tags)
        pointers = []
        for t in range(1, length):
            best, previous = (score.unsqueeze(2) + trans).max(dim=1)  # (B, C): best previous tag for each tag
            step_mask = mask[:, t].unsqueeze(1)
            score = torch.where(step_mask, best + emissions[:, t], score)
            pointers.append(torch.where(step_mask, previous, stay))  # padding points to itself
        tags = [(score + self.end).argmax(dim=1)]
        for back in reversed(pointers):
            tags.append(back.gather(1, tags[-1].unsqueeze(1)).squeeze(1))
        path = torch.stack(tags[::-1], dim=1)  # (B, L)
        return path.masked_fill(~mask, 0)
