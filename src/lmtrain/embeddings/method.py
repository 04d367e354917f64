"""A word-vector method as a plug: word2vec, GloVe, loading existing vectors, or a user's own.

Like a model family or a task, a method is a class named by its schema's ``_target_``
(``configs/method/<name>.yaml`` extends ``schema/embed/<name>``), so each method has its own keys
(``embed.x_max`` under word2vec is an error naming Word2VecConfig) and a user's method needs no
change to lmtrain: a subclass of :class:`EmbeddingMethod`, its schema (``config_class``) and a YAML
on the search path that sets ``method: <name>`` and ``embed._target_``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from lmtrain.config.commands import EmbedMethodConfig
from lmtrain.errors import UserError


class EmbeddingMethod:
    """Makes word vectors from the typed ``embed`` node of ``lmtrain embed``.

    Attributes:
        config_class: the method's schema (types a user's YAML that names this class in ``_target_``).
        trains: whether the method trains on a corpus (:meth:`train`) or reads vectors (:meth:`load`).
    """

    config_class: ClassVar[type] = EmbedMethodConfig
    trains: ClassVar[bool] = True

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def train(
        self, corpus: Iterable[list[str]], source: str, log_epoch: Any, progress: Any
    ) -> tuple[Any, list[float], int]:
        """Train on ``corpus`` (restartable tokenised documents, ``source`` names its files in errors).

        Args:
            log_epoch: ``log_epoch(epoch, metrics)`` writes one line of ``metrics.jsonl``.
            progress: the epoch progress display (``epoch_done(epoch, text)``, ``within_epoch(done, total)``).
        Returns:
            (gensim KeyedVectors, per-epoch losses, corpus tokens).
        """
        raise UserError(f"{type(self).__name__} trains no vectors; it is a method that reads them.")

    def load(self, path: str, file_format: str) -> Any:
        """The vectors in ``path`` (for a method that reads vectors instead of training them)."""
        raise UserError(f"{type(self).__name__} reads no vectors file; it trains them on a corpus.")
