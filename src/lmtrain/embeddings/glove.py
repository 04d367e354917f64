"""GloVe (Pennington, Socher & Manning, 2014), trained on shuffled batches of entries.

Cost over the nonzero co-occurrences X_ij:

    J = sum_ij 0.5 * f(X_ij) * (w_i . c_j + b_i + b~_j - log X_ij) ** 2,
    f(x) = min(1, (x / x_max) ** alpha)

with separate word (w, b) and context (c, b~) parameters, initialised uniformly in
[-0.5, 0.5] / vector_size, and glove.c's AdaGrad: the accumulator starts at 1 and accumulates the
squared *scaled* step (lr * g) ** 2; vector gradient components are clipped to +-grad_clip.
Two departures from glove.c, each needed on a small corpus (measured in configs/method/glove.yaml):

- Batches, not glove.c's per-entry loop: the steps of a word appearing k times in one batch are
  summed, and the accumulator gains their squares *before* the step divides by it. glove.c's
  order (step, then accumulate) is harmless entry by entry, but a frequent word's k summed steps
  taken at one point overshoot by up to k times and the training diverges at lr >= 0.3.
- Sampled zero cells: GloVe visits only nonzero X_ij, so a rare word, whose few observed counts
  are all ~1/d, is told what it co-occurs with but never what it does not; its vector hardly
  differs from any other's. Like word2vec's negative samples, each entry adds ``negatives``
  cells (i, j) with j drawn from the unigram distribution ** 0.75, fitted one-sidedly: a
  predicted log count above log(zero_count) is pushed down, one below is left alone.

The output vectors are w + c, then centred with their top principal directions removed
(all-but-the-top, ``postprocess.py``).
(The current glove.c leaves lr off the bias step, a slip that earlier releases and the paper do
not have; lr applies to every parameter here.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np
import scipy.sparse as sp
import torch
from gensim.models import KeyedVectors

from lmtrain.embeddings.cooccurrence import count_cooccurrences
from lmtrain.embeddings.io import keyed_vectors
from lmtrain.embeddings.postprocess import all_but_the_top
from lmtrain.embeddings.vocabulary import build_vocabulary, encode
from lmtrain.errors import UserError
from lmtrain.training.precision import resolve_device


log = logging.getLogger(__name__)

# epoch (1-based), mean loss per entry, seconds -> None
EpochCallback = Callable[[int, float, float], None]


def weighting(x: torch.Tensor, x_max: float, alpha: float) -> torch.Tensor:
    """GloVe's weight f(x) = (x / x_max) ** alpha, capped at 1."""
    return torch.clamp((x / x_max) ** alpha, max=1.0)


def loss_and_grads(w: torch.Tensor, c: torch.Tensor, log_x: torch.Tensor, weight: torch.Tensor,
                   grad_clip: Optional[float] = None):
    """The weighted least-squares loss of a batch of entries and its gradients.

    Args:
        w, c: (B, D + 1) word and context rows of the entries: vector | bias. Both are
            overwritten (their bias column becomes 1), so pass copies.
        log_x: (B,) log X_ij.
        weight: (B,) f(X_ij).
        grad_clip: clip each vector gradient component to +-grad_clip (None = no clipping);
            bias gradients are not clipped, as in glove.c.

    Returns:
        (loss, grad_w, grad_c): the summed loss 0.5 * f * diff ** 2 and its (B, D + 1)
        gradients with respect to the word and context rows (vector | bias).
    """
    diff = torch.linalg.vecdot(w[:, :-1], c[:, :-1]) + w[:, -1] + c[:, -1] - log_x  # (B,)
    fdiff = weight * diff
    fdiff = torch.where(torch.isfinite(fdiff), fdiff, torch.zeros_like(fdiff))  # glove.c skips NaN
    loss = 0.5 * (fdiff * diff).sum()
    # d/dw (w.c + b + b~) = c | 1: with the bias column set to 1, one product gives vector and bias
    w[:, -1] = 1.0
    c[:, -1] = 1.0
    grad_w = fdiff[:, None] * c  # (B, D + 1)
    grad_c = fdiff[:, None] * w
    if grad_clip is not None:
        grad_w[:, :-1].clamp_(-grad_clip, grad_clip)
        grad_c[:, :-1].clamp_(-grad_clip, grad_clip)
    return loss, grad_w, grad_c


def _adagrad(params: torch.Tensor, grad_sq: torch.Tensor, index: torch.Tensor, grads: torch.Tensor,
             lr: float) -> None:
    """AdaGrad on the rows ``index`` of ``params``, steps of repeated rows summed.

    The accumulator gains each entry's squared step, as glove.c's does when it visits the
    entries one by one, not the square of their sum: a frequent word's steps within one large
    batch largely agree in sign, and squaring their sum would grow its accumulator k times too
    fast for a word seen k times per batch, freezing exactly the best-estimated words. It gains
    them before the step divides by it, which bounds a frequent word's summed step (see the
    module docstring). ``grads`` (B, D + 1) is overwritten.
    """
    rows, inverse = torch.unique(index, return_inverse=True)
    # lr is applied to the (U, D + 1) sums over distinct rows, not to the (B, D + 1) gradients
    step = torch.zeros(len(rows), params.shape[1], dtype=params.dtype, device=params.device)
    squares = torch.zeros_like(step)
    step.index_add_(0, inverse, grads)
    squares.index_add_(0, inverse, grads.square_())
    grad_sq.index_add_(0, rows, squares.mul_(lr * lr))
    params.index_add_(0, rows, step.mul_(-lr).div_(grad_sq[rows].sqrt_()))


@dataclass
class GloveParams:
    """Word and context parameters; the last column of each table is the bias.

    Attributes:
        word: (V, D + 1) word vectors | word bias.
        context: (V, D + 1) context vectors | context bias.
        word_sq, context_sq: AdaGrad accumulators of the same shapes, starting at 1.
    """

    word: torch.Tensor
    context: torch.Tensor
    word_sq: torch.Tensor
    context_sq: torch.Tensor

    @classmethod
    def init(cls, vocab_size: int, vector_size: int, seed: int, device: torch.device) -> "GloveParams":
        """glove.c's initialisation: uniform in [-0.5, 0.5] / vector_size, biases included."""
        gen = torch.Generator().manual_seed(seed)
        word = (torch.rand(vocab_size, vector_size + 1, generator=gen) - 0.5) / vector_size
        context = (torch.rand(vocab_size, vector_size + 1, generator=gen) - 0.5) / vector_size
        return cls(word.to(device), context.to(device),
                   torch.ones_like(word, device=device), torch.ones_like(context, device=device))

    def step(self, rows: torch.Tensor, cols: torch.Tensor, log_x: torch.Tensor, weight: torch.Tensor,
             lr: float, grad_clip: Optional[float]) -> torch.Tensor:
        """One AdaGrad step on a batch of entries (rows[k], cols[k]); returns the summed loss."""
        w, c = self.word[rows], self.context[cols]  # (B, D + 1) copies
        loss, grad_w, grad_c = loss_and_grads(w, c, log_x, weight, grad_clip)
        _adagrad(self.word, self.word_sq, rows, grad_w, lr)
        _adagrad(self.context, self.context_sq, cols, grad_c, lr)
        return loss

    def vectors(self) -> np.ndarray:
        """(V, D) float32 word + context vectors, the output the paper recommends."""
        return (self.word[:, :-1] + self.context[:, :-1]).float().cpu().numpy()


class ZeroCellSampler:
    """Sampled cells (i, j): i a word of the batch, j drawn from the unigram distribution ** 0.75.

    Args:
        cooc: the co-occurrence matrix; its row sums stand for the word counts.
        negatives: cells per entry (0 = none).
        zero_count: a sampled cell's predicted count is pushed down to this when above it.
        zero_weight: f of a sampled cell whose prediction is above log(zero_count).
        seed: seeds the draws (on the CPU, so any device gives the same cells).
    """

    def __init__(self, cooc: sp.coo_matrix, negatives: int, zero_count: float, zero_weight: float,
                 seed: int):
        counts = np.asarray(cooc.sum(axis=1), dtype=np.float64).ravel()
        self.probs = torch.from_numpy(counts ** 0.75)
        self.negatives, self.weight = negatives, zero_weight
        self.log_count = float(np.log(zero_count))
        self.gen = torch.Generator().manual_seed(seed)

    def extend(self, params: GloveParams, rows: torch.Tensor, cols: torch.Tensor,
               log_x: torch.Tensor, weight: torch.Tensor):
        """The batch (rows, cols, log_x, weight) with its sampled cells appended."""
        if self.negatives == 0 or len(rows) == 0:
            return rows, cols, log_x, weight
        zero_rows = rows.repeat(self.negatives)
        zero_cols = torch.multinomial(self.probs, len(zero_rows), replacement=True,
                                      generator=self.gen).to(rows.device)
        w, c = params.word[zero_rows], params.context[zero_cols]  # (N, D + 1)
        predicted = torch.linalg.vecdot(w[:, :-1], c[:, :-1]) + w[:, -1] + c[:, -1]
        # one-sided: a cell never observed may still be a pair the corpus is too small to show
        zero_weight = (predicted > self.log_count).to(weight.dtype) * self.weight
        zero_log_x = torch.full_like(predicted, self.log_count, dtype=log_x.dtype)
        return (torch.cat([rows, zero_rows]), torch.cat([cols, zero_cols]),
                torch.cat([log_x, zero_log_x]), torch.cat([weight, zero_weight]))


def train_glove(cooc: sp.coo_matrix, vector_size: int, epochs: int, lr: float = 0.05,
                x_max: float = 100.0, alpha: float = 0.75, batch_size: int = 4096,
                grad_clip: Optional[float] = 100.0, negatives: int = 1, zero_count: float = 0.1,
                zero_weight: float = 0.5, remove_top: int = 2, seed: int = 42, device: str = "auto",
                threads: Optional[int] = None, on_epoch: Optional[EpochCallback] = None,
                on_batch: Optional[Callable[[int, float], None]] = None) -> tuple[np.ndarray, list[float]]:
    """Fit GloVe vectors to a co-occurrence matrix.

    Args:
        cooc: (V, V) co-occurrence counts; only its nonzero entries are visited.
        vector_size: D.
        epochs: passes over the nonzero entries, reshuffled each pass.
        lr: AdaGrad step size (glove.c's eta).
        x_max, alpha: the weighting f(x) = min(1, (x / x_max) ** alpha).
        batch_size: entries per step.
        grad_clip: clip of each vector gradient component; None = off.
        negatives: sampled zero cells per entry (``ZeroCellSampler``); 0 = glove.c's objective.
        zero_count, zero_weight: the target count and the weight f of a sampled cell.
        remove_top: principal directions removed from the output (``all_but_the_top``);
            -1 = return w + c untouched.
        seed: seeds the initialisation and the shuffles.
        device: auto | cpu | cuda | cuda:N.
        threads: torch CPU threads while training (restored afterwards); None = leave as is.
            The steps are small gathers and scatters: extra threads gain little, and on a busy
            machine OpenMP threads waiting for each other can make training several times slower.
        on_epoch: called after each epoch with (epoch, mean loss per entry, seconds).
        on_batch: called after each step with (epoch, fraction of the epoch done).

    Returns:
        (vectors, losses): (V, D) float32 post-processed w + c vectors and the mean loss per entry of
        each epoch (measured during the epoch, before each step, as glove.c reports it; sampled
        cells included).
    """
    dev = resolve_device(device, key="embed.device")
    previous_threads = torch.get_num_threads()
    if threads and dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        cooc = cooc.tocoo()
        sampler = ZeroCellSampler(cooc, negatives, zero_count, zero_weight, seed + 2)
        vectors, losses = _fit(cooc, vector_size, epochs, lr, x_max, alpha, batch_size, grad_clip,
                               sampler, seed, dev, on_epoch, on_batch)
        return (vectors if remove_top < 0 else all_but_the_top(vectors, remove_top)), losses
    finally:
        torch.set_num_threads(previous_threads)


def _fit(cooc: sp.coo_matrix, vector_size: int, epochs: int, lr: float, x_max: float, alpha: float,
         batch_size: int, grad_clip: Optional[float], sampler: ZeroCellSampler, seed: int,
         dev: torch.device,
         on_epoch: Optional[EpochCallback], on_batch: Optional[Callable[[int, float], None]]
         ) -> tuple[np.ndarray, list[float]]:
    """The training loop of ``train_glove`` on the resolved device."""
    rows = torch.from_numpy(cooc.row.astype(np.int64)).to(dev)  # (nnz,)
    cols = torch.from_numpy(cooc.col.astype(np.int64)).to(dev)
    counts = torch.from_numpy(cooc.data.astype(np.float64))
    log_x = counts.log().float().to(dev)
    weight = weighting(counts, x_max, alpha).float().to(dev)
    params = GloveParams.init(cooc.shape[0], vector_size, seed, dev)
    shuffle_gen = torch.Generator().manual_seed(seed + 1)
    nnz, losses = len(rows), []
    log.info("GloVe: %d words, %d entries, %d epochs on %s", cooc.shape[0], nnz, epochs, dev)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(nnz, generator=shuffle_gen).to(dev)
        # one shuffled copy per epoch; each step then takes contiguous slices
        epoch_rows, epoch_cols, epoch_log_x, epoch_weight = rows[order], cols[order], log_x[order], weight[order]
        total = torch.zeros((), device=dev, dtype=torch.float64)  # summed on device: no sync per step
        for first in range(0, nnz, batch_size):
            batch = slice(first, first + batch_size)
            entries = sampler.extend(params, epoch_rows[batch], epoch_cols[batch],
                                     epoch_log_x[batch], epoch_weight[batch])
            total += params.step(*entries, lr, grad_clip)
            if on_batch is not None:
                on_batch(epoch, min(first + batch_size, nnz) / nnz)
        losses.append(total.item() / max(nnz, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], time.perf_counter() - start)
    return params.vectors(), losses


def fit_glove(corpus: Iterable[list[str]], source: str, *, vector_size: int = 100, window: int = 10,
              min_count: int = 5, max_vocab: Optional[int] = None, chunk_tokens: int = 1_000_000,
              **train_kwargs) -> tuple[KeyedVectors, list[float], int]:
    """Vocabulary, co-occurrence counts and GloVe training on a restartable corpus.

    Args:
        corpus: restartable iterable of tokenised documents (read twice: vocabulary, counts).
        source: the corpus files, named in errors.
        vector_size: D.
        window: context words counted on each side.
        min_count, max_vocab: the vocabulary cut.
        chunk_tokens: tokens per co-occurrence counting chunk.
        **train_kwargs: the remaining arguments of ``train_glove``.

    Returns:
        (keyed vectors sorted by descending word count, per-epoch losses, corpus tokens).
    """
    vocab = build_vocabulary(corpus, min_count, max_vocab, source)
    cooc = count_cooccurrences(encode(corpus, vocab), len(vocab), window, chunk_tokens)
    log.info("GloVe: vocabulary %d words of %d tokens, %d co-occurrence entries",
             len(vocab), vocab.total_tokens, cooc.nnz)
    if cooc.nnz == 0:
        raise UserError(f"no two vocabulary words occur within embed.window={window} of each other "
                        f"in one document of {source}; add text or lower embed.min_count.")
    vectors, losses = train_glove(cooc, vector_size, **train_kwargs)
    return keyed_vectors(vocab.words, vectors, vocab.counts), losses, vocab.total_tokens
