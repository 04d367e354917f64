"""GloVe (Pennington, Socher & Manning, 2014), trained on shuffled batches of entries.

Cost over the nonzero co-occurrences X_ij:

    J = sum_ij 0.5 * f(X_ij) * (w_i . c_j + b_i + b~_j - log X_ij) ** 2,
    f(x) = min(1, (x / x_max) ** alpha)

with separate word (w, b) and context (c, b~) parameters, initialised uniformly in
[-0.5, 0.5] / vector_size, and glove.c's AdaGrad: the accumulator starts at 1 and accumulates the
squared *scaled* step (lr * g) ** 2; vector gradient components are clipped to +-grad_clip.
Two departures from glove.c, each needed on a small corpus (measured in configs/method/glove.yaml):

- Minibatch AdaGrad, not glove.c's per-entry loop: the gradients of a word's entries in one
  batch are summed into one step, the accumulator gains that step's square and then divides it.
  Entry by entry a frequent word's gradient is re-read after every step; a batch's k entries are
  all read at one point, so giving each its own accumulator share moved the word by ~sqrt(k)
  per coordinate at once (k is in the thousands for "the" in 16k entries) and the first pass
  blew the loss up to ~13 per entry, inflating the accumulators for the rest of the training.
- Sampled zero cells (as in Swivel, Shazeer et al., 2016): GloVe visits only nonzero X_ij. On
  a small corpus most of them are single co-occurrences (X = 1/d), which say what a word
  occurs with but never what it does not, and glove.c's objective fits that noise (WordSim-353
  / SimLex-999 0.24 / 0.14 after 6 passes without zero cells, 0.44 / 0.19 after 3 with them;
  with the per-entry accumulator, SimLex-999 fell from 0.16 after 3 passes to 0.12 after 24
  while the loss kept falling). Like word2vec's negative samples, each entry adds ``negatives``
  cells (i, j) with j drawn from the unigram distribution ** 0.75; those that are zero in X are
  fitted one-sidedly: a predicted log count above log(zero_count) is pushed down, one below is
  left alone (the pair may exist, unseen in a small corpus).

The output vectors are w + c, as in the paper and glove.c.
(The current glove.c leaves lr off the bias step, a slip that earlier releases and the paper do
not have; lr applies to every parameter here.)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
import torch
from gensim.models import KeyedVectors

from lmtrain.config.commands import GloveConfig
from lmtrain.embeddings.cooccurrence import count_cooccurrences
from lmtrain.embeddings.glove_zero_cells import ZeroCellSampler
from lmtrain.embeddings.io import keyed_vectors
from lmtrain.embeddings.method import EmbeddingMethod
from lmtrain.embeddings.vocabulary import build_vocabulary, encode
from lmtrain.errors import UserError
from lmtrain.training.precision import resolve_device

log = logging.getLogger(__name__)

# epoch (1-based), mean loss per entry, seconds -> None
EpochCallback = Callable[[int, float, float], None]


def weighting(x: torch.Tensor, x_max: float, alpha: float) -> torch.Tensor:
    """GloVe's weight f(x) = (x / x_max) ** alpha, capped at 1."""
    return torch.clamp((x / x_max) ** alpha, max=1.0)


def loss_and_grads(
    w: torch.Tensor,
    c: torch.Tensor,
    log_x: torch.Tensor,
    weight: torch.Tensor,
    grad_clip: Optional[float] = None,
    one_sided: Optional[torch.Tensor] = None,
):
    """The weighted least-squares loss of a batch of entries and its gradients.

    Args:
        w, c: (B, D + 1) word and context rows of the entries: vector | bias. Both are
            overwritten (their bias column becomes 1), so pass copies.
        log_x: (B,) log X_ij.
        weight: (B,) f(X_ij).
        grad_clip: clip each vector gradient component to +-grad_clip (None = no clipping);
            bias gradients are not clipped, as in glove.c.
        one_sided: (B,) bool, entries fitted from above only: a prediction below log_x costs
            nothing (the sampled zero cells); None = none.

    Returns:
        (loss, grad_w, grad_c): the summed loss 0.5 * f * diff ** 2 and its (B, D + 1)
        gradients with respect to the word and context rows (vector | bias).
    """
    diff = torch.linalg.vecdot(w[:, :-1], c[:, :-1]) + w[:, -1] + c[:, -1] - log_x  # (B,)
    if one_sided is not None:
        diff = torch.where(one_sided, diff.clamp(min=0.0), diff)
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


def _adagrad(params: torch.Tensor, grad_sq: torch.Tensor, index: torch.Tensor, grads: torch.Tensor, lr: float) -> None:
    """Minibatch AdaGrad on the rows ``index`` of ``params``: the entries' gradients of a row are
    summed into one gradient, whose scaled square the accumulator gains before dividing the step.

    The sum is one gradient taken at one point, so it is one AdaGrad step: the step of each
    coordinate stays below 1 however often a word occurs in the batch. ``grads`` is not changed.
    """
    rows, inverse = torch.unique(index, return_inverse=True)
    step = torch.zeros(len(rows), params.shape[1], dtype=params.dtype, device=params.device)
    step.index_add_(0, inverse, grads).mul_(lr)  # (U, D + 1) scaled summed gradients
    grad_sq.index_add_(0, rows, step.square())
    params.index_add_(0, rows, step.neg_().div_(grad_sq[rows].sqrt_()))


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
    def init(cls, vocab_size: int, vector_size: int, seed: int, device: torch.device) -> GloveParams:
        """glove.c's initialisation: uniform in [-0.5, 0.5] / vector_size, biases included."""
        gen = torch.Generator().manual_seed(seed)
        word = (torch.rand(vocab_size, vector_size + 1, generator=gen) - 0.5) / vector_size
        context = (torch.rand(vocab_size, vector_size + 1, generator=gen) - 0.5) / vector_size
        return cls(
            word.to(device),
            context.to(device),
            torch.ones_like(word, device=device),
            torch.ones_like(context, device=device),
        )

    def step(
        self,
        rows: torch.Tensor,
        cols: torch.Tensor,
        log_x: torch.Tensor,
        weight: torch.Tensor,
        lr: float,
        grad_clip: Optional[float],
        one_sided: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """One AdaGrad step on a batch of entries (rows[k], cols[k]); returns the summed loss.

        ``one_sided`` marks the entries fitted from above only (``loss_and_grads``)."""
        w, c = self.word[rows], self.context[cols]  # (B, D + 1) copies
        loss, grad_w, grad_c = loss_and_grads(w, c, log_x, weight, grad_clip, one_sided)
        _adagrad(self.word, self.word_sq, rows, grad_w, lr)
        _adagrad(self.context, self.context_sq, cols, grad_c, lr)
        return loss

    def vectors(self) -> np.ndarray:
        """(V, D) float32 word + context vectors, the output the paper recommends."""
        return (self.word[:, :-1] + self.context[:, :-1]).float().cpu().numpy()


def train_glove(
    cooc: sp.coo_matrix,
    vector_size: int,
    epochs: int,
    lr: float = 0.05,
    x_max: float = 100.0,
    alpha: float = 0.75,
    batch_size: int = 4096,
    grad_clip: Optional[float] = 100.0,
    negatives: int = 1,
    zero_count: float = 0.1,
    zero_weight: float = 0.5,
    seed: int = 42,
    device: str = "auto",
    threads: Optional[int] = None,
    on_epoch: Optional[EpochCallback] = None,
    on_batch: Optional[Callable[[int, float], None]] = None,
) -> tuple[np.ndarray, list[float]]:
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
        seed: seeds the initialisation and the shuffles.
        device: auto | cpu | cuda | cuda:N.
        threads: torch CPU threads while training (restored afterwards); None = leave as is.
            The steps are small gathers and scatters: extra threads gain little, and on a busy
            machine OpenMP threads waiting for each other can make training several times slower.
        on_epoch: called after each epoch with (epoch, mean loss per entry, seconds).
        on_batch: called after each step with (epoch, fraction of the epoch done).

    Returns:
        (vectors, losses): (V, D) float32 w + c vectors and the mean loss per entry of
        each epoch (measured during the epoch, before each step, as glove.c reports it; sampled
        cells included).
    """
    dev = resolve_device(device, key="embed.device")
    with _cpu_threads(threads if dev.type == "cpu" else None):
        cooc = cooc.tocoo()
        sampler = ZeroCellSampler(cooc, negatives, zero_count, zero_weight, seed + 2, dev)
        return _fit(
            cooc, vector_size, epochs, lr, x_max, alpha, batch_size, grad_clip, sampler, seed, dev, on_epoch, on_batch
        )


@contextlib.contextmanager
def _cpu_threads(threads: Optional[int]) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` inside (None or 0: left as they are), restored afterwards."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)


def _fit(
    cooc: sp.coo_matrix,
    vector_size: int,
    epochs: int,
    lr: float,
    x_max: float,
    alpha: float,
    batch_size: int,
    grad_clip: Optional[float],
    sampler: ZeroCellSampler,
    seed: int,
    dev: torch.device,
    on_epoch: Optional[EpochCallback],
    on_batch: Optional[Callable[[int, float], None]],
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
            step_rows, step_cols, step_log_x, step_weight, one_sided = sampler.extend(
                epoch_rows[batch], epoch_cols[batch], epoch_log_x[batch], epoch_weight[batch]
            )
            total += params.step(step_rows, step_cols, step_log_x, step_weight, lr, grad_clip, one_sided)
            if on_batch is not None:
                on_batch(epoch, min(first + batch_size, nnz) / nnz)
        losses.append(total.item() / max(nnz, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], time.perf_counter() - start)
    return params.vectors(), losses


def fit_glove(
    corpus: Iterable[list[str]],
    source: str,
    *,
    vector_size: int = 100,
    window: int = 10,
    min_count: int = 5,
    max_vocab: Optional[int] = None,
    chunk_tokens: int = 1_000_000,
    **train_kwargs,
) -> tuple[KeyedVectors, list[float], int]:
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
    log.info(
        "GloVe: vocabulary %d words of %d tokens, %d co-occurrence entries", len(vocab), vocab.total_tokens, cooc.nnz
    )
    if cooc.nnz == 0:
        raise UserError(
            f"no two vocabulary words occur within embed.window={window} of each other "
            f"in one document of {source}; add text or lower embed.min_count."
        )
    vectors, losses = train_glove(cooc, vector_size, **train_kwargs)
    return keyed_vectors(vocab.words, vectors, vocab.counts), losses, vocab.total_tokens


class GloveMethod(EmbeddingMethod):
    """``method=glove``: co-occurrence counts, then GloVe trained in minibatches; each epoch's loss and time logged."""

    config_class = GloveConfig

    def train(
        self, corpus: Iterable[list[str]], source: str, log_epoch: Any, progress: Any
    ) -> tuple[KeyedVectors, list[float], int]:
        """See :meth:`EmbeddingMethod.train`."""
        c = self.cfg

        def on_epoch(epoch: int, loss: float, seconds: float) -> None:
            log_epoch(epoch, {"train/loss": loss, "train/epoch_s": seconds})
            progress.epoch_done(epoch, f"loss {loss:.4g}  {seconds:.1f} s/epoch")

        return fit_glove(
            corpus,
            source,
            vector_size=c.vector_size,
            window=c.window,
            min_count=c.min_count,
            max_vocab=c.max_vocab,
            chunk_tokens=c.chunk_tokens,
            epochs=c.epochs,
            lr=c.lr,
            x_max=c.x_max,
            alpha=c.alpha,
            batch_size=c.batch_size,
            grad_clip=c.grad_clip or None,
            seed=c.seed,
            device=c.device,
            threads=c.workers,
            on_epoch=on_epoch,
            on_batch=progress.within_epoch,
        )
