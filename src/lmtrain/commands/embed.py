"""`lmtrain embed`: train word vectors (method=word2vec|glove) or load them (method=load),
evaluate them on analogies and word similarity, save them, and show nearest neighbours."""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console

from lmtrain.config import EmbedConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.embeddings.console import EpochProgress, neighbours_table, results_table
from lmtrain.embeddings.corpus import build_corpus
from lmtrain.embeddings.evaluation import evaluate, nearest_neighbours, unknown_words_error
from lmtrain.embeddings.io import load_vectors, save_vectors
from lmtrain.errors import UserError
from lmtrain.run_folder.layout import RunDir, hydra_run_dir

log = logging.getLogger(__name__)

METHODS = ("word2vec", "glove", "load")


def _train(cfg: EmbedConfig, run_dir: RunDir, console: Console):
    """Build the corpus and train ``cfg.method``; returns (vectors, losses, corpus tokens)."""
    e = cfg.embed
    corpus = build_corpus(e.corpus, list(e.train_files), e.tokenize, e.file_format, e.text_field)
    common = dict(vector_size=e.vector_size, window=e.window, min_count=e.min_count,
                  max_vocab=e.max_vocab)
    with EpochProgress(cfg.method, e.epochs, enabled=cfg.progress, console=console) as progress:
        if cfg.method == "word2vec":
            from lmtrain.embeddings.word2vec import train_word2vec

            def on_epoch(epoch: int, loss: float, words_per_s: float, seconds: float) -> None:
                run_dir.log(epoch, {"train/loss": loss, "train/words_per_s": words_per_s})
                progress.epoch_done(epoch, f"loss {loss:.4g}  {words_per_s:,.0f} words/s")

            return train_word2vec(corpus, corpus.describe(), **common, epochs=e.epochs, lr=e.lr,
                                  min_lr=e.min_lr, sg=e.sg, hs=e.hs, negative=e.negative,
                                  sample=e.sample, workers=e.workers, seed=e.seed, on_epoch=on_epoch)

        from lmtrain.embeddings.glove import fit_glove

        def on_glove_epoch(epoch: int, loss: float, seconds: float) -> None:
            run_dir.log(epoch, {"train/loss": loss, "train/epoch_s": seconds})
            progress.epoch_done(epoch, f"loss {loss:.4g}  {seconds:.1f} s/epoch")

        return fit_glove(corpus, corpus.describe(), **common, chunk_tokens=e.chunk_tokens,
                         epochs=e.epochs, lr=e.lr, x_max=e.x_max, alpha=e.alpha,
                         batch_size=e.batch_size, grad_clip=e.grad_clip or None, seed=e.seed,
                         device=e.device, threads=e.workers, on_epoch=on_glove_epoch,
                         on_batch=progress.within_epoch)


def run(cfg) -> dict[str, Any]:
    """Run `lmtrain embed` with the composed config ``cfg`` (an EmbedConfig); returns the summary."""
    cfg: EmbedConfig = config_objects(cfg, "embed")
    start = time.perf_counter()
    logging.getLogger("gensim").setLevel(logging.WARNING)  # gensim logs every step at INFO
    if cfg.method not in METHODS:
        raise UserError(f"unknown method={cfg.method}; use one of {', '.join(METHODS)}.")
    console = Console()
    run_dir = RunDir(hydra_run_dir())
    summary: dict[str, Any] = {"method": cfg.method}
    vectors_path = None
    if cfg.method == "load":
        if not cfg.path:
            raise UserError("method=load needs the vectors to evaluate: add path=<file> (a "
                            "vectors.bin, vectors.w2v.txt or vectors.glove.txt from a run directory, "
                            "or any word2vec / GloVe text file).")
        kv = load_vectors(cfg.path, cfg.format, cfg.embed.allow_pickle)
        summary["path"] = str(cfg.path)
    else:
        kv, losses, tokens = _train(cfg, run_dir, console)
        vectors_path = save_vectors(kv, run_dir.path)["binary"]
        summary.update({"corpus_tokens": tokens, "train/loss": losses[-1] if losses else None,
                        "train_time_s": time.perf_counter() - start})
    summary.update({"vocab_size": len(kv), "vector_size": kv.vector_size})
    summary.update(evaluate(kv, cfg.eval.analogies, dict(cfg.eval.similarities),
                            cfg.eval.restrict_vocab, cfg.eval.case_insensitive))
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
