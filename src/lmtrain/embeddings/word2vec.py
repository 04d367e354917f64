"""Word2Vec through gensim: gensim owns the training loop, we own the settings and reporting.

The loss gensim tracks (``compute_loss=True``) is one running tally over the whole ``train()``
call, so the loss of an epoch is the difference of ``get_latest_training_loss()`` between the end
and the start of that epoch. gensim's Cython job copies ``model.running_training_loss`` when it
starts and writes it back when it ends, so with ``workers > 1`` jobs running at the same time
overwrite each other and whole jobs' losses vanish (the per-epoch figure jumps around and is too
low). ``_Word2Vec`` gives every job a private tally and adds it under a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Optional

from gensim.models import KeyedVectors, Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from lmtrain.config.commands import Word2VecConfig
from lmtrain.embeddings.method import EmbeddingMethod
from lmtrain.embeddings.vocabulary import check_vocabulary
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

# gensim silently truncates longer sentences (word2vec_inner.MAX_WORDS_IN_BATCH)
MAX_WORDS_PER_SENTENCE = 10000

# epoch (1-based), summed loss of the epoch, raw words per second, seconds -> None
EpochCallback = Callable[[int, float, float, float], None]


_LOSS_LOCK = threading.Lock()


class _JobView:
    """The model as one training job sees it: every attribute, but a private loss tally."""

    def __init__(self, model: Word2Vec):
        self._model = model
        self.running_training_loss = 0.0

    def __getattr__(self, name: str):  # only reached for names the view itself lacks
        return getattr(self._model, name)


class _Word2Vec(Word2Vec):
    """gensim's Word2Vec with a loss tally that stays exact when several workers train."""

    def _do_train_job(self, sentences, alpha, inits):
        view = _JobView(self)
        result = Word2Vec._do_train_job(view, sentences, alpha, inits)
        with _LOSS_LOCK:
            self.running_training_loss += view.running_training_loss
        return result


class _Pieces:
    """Restartable view of a corpus with documents cut into pieces gensim does not truncate."""

    def __init__(self, docs: Iterable[list[str]], max_len: int = MAX_WORDS_PER_SENTENCE):
        self.docs = docs
        self.max_len = max_len

    def __iter__(self) -> Iterator[list[str]]:
        for doc in self.docs:
            for start in range(0, len(doc), self.max_len):
                yield doc[start : start + self.max_len]


class EpochReporter(CallbackAny2Vec):
    """Measures each epoch's loss (difference of gensim's running tally), time and words/s.

    Args:
        on_epoch: called after each epoch with (epoch, loss, words per second, seconds).
    """

    def __init__(self, on_epoch: Optional[EpochCallback] = None):
        self.on_epoch = on_epoch
        self.losses: list[float] = []
        self._start_loss = 0.0
        self._start_time = 0.0

    def on_epoch_begin(self, model: Word2Vec) -> None:
        """Note the loss and the time as the epoch starts."""
        self._start_loss = model.get_latest_training_loss()
        self._start_time = time.perf_counter()

    def on_epoch_end(self, model: Word2Vec) -> None:
        """Record the epoch's loss and report it with its speed to ``on_epoch``."""
        seconds = time.perf_counter() - self._start_time
        loss = float(model.get_latest_training_loss() - self._start_loss)
        self.losses.append(loss)
        words_per_s = model.corpus_total_words / max(seconds, 1e-9)
        if self.on_epoch is not None:
            self.on_epoch(len(self.losses), loss, words_per_s, seconds)


def _check_settings(sg: int, hs: int, negative: int) -> None:
    if sg not in (0, 1):
        raise UserError(f"embed.sg={sg}: use 0 for CBOW or 1 for skip-gram.")
    if hs not in (0, 1):
        raise UserError(f"embed.hs={hs}: use 1 for hierarchical softmax or 0 for none.")
    if not hs and negative <= 0:
        raise UserError(
            "word2vec needs an output layer: set embed.negative to a positive number "
            "of negative samples (e.g. 5) or embed.hs=1."
        )


def train_word2vec(
    corpus: Iterable[list[str]],
    source: str,
    *,
    vector_size: int = 100,
    window: int = 5,
    min_count: int = 5,
    max_vocab: Optional[int] = None,
    epochs: int = 5,
    lr: float = 0.025,
    min_lr: float = 1e-4,
    sg: int = 0,
    hs: int = 0,
    negative: int = 5,
    sample: float = 1e-3,
    workers: int = 3,
    seed: int = 42,
    on_epoch: Optional[EpochCallback] = None,
    batch_words: int = MAX_WORDS_PER_SENTENCE,
) -> tuple[KeyedVectors, list[float], int]:
    """Train gensim Word2Vec on a restartable corpus.

    Args:
        corpus: restartable iterable of tokenised documents (read once per epoch, plus once for the vocabulary).
        source: the corpus files, named in errors.
        vector_size, window, min_count, epochs, sg, hs, negative, sample, workers, seed: as in gensim's Word2Vec.
        max_vocab: gensim's max_final_vocab (None = no cap).
        lr, min_lr: gensim's alpha and min_alpha (linearly decayed).
        on_epoch: called after each epoch with (epoch, loss, words per second, seconds).
        batch_words: words per gensim job (gensim's default 10000).

    Returns:
        (keyed vectors, per-epoch losses, corpus tokens).
    """
    _check_settings(sg, hs, negative)
    pieces = _Pieces(corpus)
    model = _Word2Vec(
        vector_size=vector_size,
        window=window,
        min_count=min_count,
        max_final_vocab=max_vocab,
        sg=sg,
        hs=hs,
        negative=negative,
        sample=sample,
        workers=workers,
        seed=seed,
        alpha=lr,
        min_alpha=min_lr,
        compute_loss=True,
        batch_words=batch_words,
    )
    return _train(model, pieces, source, min_count, epochs, on_epoch)


def _train(
    model: _Word2Vec, pieces: _Pieces, source: str, min_count: int, epochs: int, on_epoch: Optional[EpochCallback]
) -> tuple[KeyedVectors, list[float], int]:
    """:func:`train_word2vec` once its gensim model is made: the vocabulary checked, then the epochs."""
    model.build_vocab(pieces, keep_raw_vocab=True)
    top_count = max(model.raw_vocab.values(), default=0)
    check_vocabulary(model.corpus_total_words, len(model.wv), min_count, top_count, source)
    model.raw_vocab = {}  # only needed for the message above
    reporter = EpochReporter(on_epoch)
    log.info("Word2Vec: %d words, %d tokens, %d epochs", len(model.wv), model.corpus_total_words, epochs)
    model.train(
        pieces,
        total_examples=model.corpus_count,
        total_words=model.corpus_total_words,
        epochs=epochs,
        compute_loss=True,
        callbacks=[reporter],
    )
    return model.wv, reporter.losses, model.corpus_total_words


class Word2VecMethod(EmbeddingMethod):
    """``method=word2vec``: gensim's Word2Vec, each epoch's loss and words/s logged."""

    config_class = Word2VecConfig

    def train(
        self, corpus: Iterable[list[str]], source: str, log_epoch: Any, progress: Any
    ) -> tuple[KeyedVectors, list[float], int]:
        """See :meth:`EmbeddingMethod.train`."""
        c = self.cfg

        def on_epoch(epoch: int, loss: float, words_per_s: float, seconds: float) -> None:
            log_epoch(epoch, {"train/loss": loss, "train/words_per_s": words_per_s})
            progress.epoch_done(epoch, f"loss {loss:.4g}  {words_per_s:,.0f} words/s")

        return train_word2vec(
            corpus,
            source,
            vector_size=c.vector_size,
            window=c.window,
            min_count=c.min_count,
            max_vocab=c.max_vocab,
            epochs=c.epochs,
            lr=c.lr,
            min_lr=c.min_lr,
            sg=c.sg,
            hs=c.hs,
            negative=c.negative,
            sample=c.sample,
            workers=c.workers,
            seed=c.seed,
            on_epoch=on_epoch,
        )
