"""`lmtrain embed`: train word vectors (method=word2vec|glove) or load them (method=load),
evaluate them on analogies and word similarity, save them, and show nearest neighbours.

The method is a plug (:class:`lmtrain.embeddings.method.EmbeddingMethod`, named by ``embed._target_``);
the run folder is claimed, locked and given its status like every command's (lmtrain.cli.main).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from lmtrain.config import EmbedConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.embeddings.console import EpochProgress, neighbours_table, results_table
from lmtrain.embeddings.corpus import build_corpus
from lmtrain.embeddings.evaluation import evaluate, main_metric, nearest_neighbours, unknown_words_error
from lmtrain.embeddings.io import save_vectors
from lmtrain.embeddings.method import EmbeddingMethod
from lmtrain.errors import UserError
from lmtrain.plugs import plug_class
from lmtrain.run_folder.layout import RunDir, hydra_run_dir

log = logging.getLogger(__name__)


def _train(cfg: EmbedConfig, method: EmbeddingMethod, run_dir: RunDir, console: Console):
    """Build the corpus and train with ``method``; returns (vectors, losses, corpus tokens)."""
    e = cfg.embed
    corpus = build_corpus(e.corpus, list(e.train_files), e.tokenize, e.file_format, e.text_field)
    with EpochProgress(cfg.method, e.epochs, enabled=cfg.progress, console=console) as progress:
        return method.train(corpus, corpus.describe(), run_dir.log, progress)


def run(composed: DictConfig) -> dict[str, Any]:
    """Run `lmtrain embed` with the composed config ``composed`` (an EmbedConfig); returns the summary."""
    cfg: EmbedConfig = config_objects(composed, "embed")
    start = time.perf_counter()
    logging.getLogger("gensim").setLevel(logging.WARNING)  # gensim logs every step at INFO
    method = plug_class(cfg.embed, "embed", EmbeddingMethod)(cfg.embed)
    console = Console()
    run_dir = RunDir(hydra_run_dir())
    summary: dict[str, Any] = {"method": cfg.method}
    vectors_path = None
    if not method.trains:
        if not cfg.path:
            raise UserError(
                "method=load needs the vectors to evaluate: add path=<file> (a "
                "vectors.bin, vectors.w2v.txt or vectors.glove.txt from a run directory, "
                "or any word2vec / GloVe text file)."
            )
        kv = method.load(cfg.path, cfg.format)
        summary["path"] = str(cfg.path)
    else:
        kv, losses, tokens = _train(cfg, method, run_dir, console)
        vectors_path = save_vectors(kv, run_dir.path)["binary"]
        summary.update(
            {
                "corpus_tokens": tokens,
                "train/loss": losses[-1] if losses else None,
                "train_time_s": time.perf_counter() - start,
            }
        )
    summary.update({"vocab_size": len(kv), "vector_size": kv.vector_size})
    summary.update(
        evaluate(
            kv, cfg.eval.analogies, dict(cfg.eval.similarities), cfg.eval.restrict_vocab, cfg.eval.case_insensitive
        )
    )
    ranked_by = main_metric(cfg.eval.analogies, dict(cfg.eval.similarities))
    if ranked_by is not None:
        summary["main_metric"] = ranked_by
    summary["wall_time_s"] = time.perf_counter() - start
    run_dir.write_summary(summary)
    console.print(results_table(summary, list(cfg.eval.similarities)))
    if cfg.query:
        neighbours, missing = nearest_neighbours(kv, list(cfg.query), cfg.topn)
        if neighbours:
            console.print(neighbours_table(neighbours))
        if missing:
            raise unknown_words_error(missing, kv, vectors_path)
    log.info("run directory: %s", run_dir.path)
    return summary
