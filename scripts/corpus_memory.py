"""Peak memory of `lmtrain pretrain` against corpus size: it should stay flat.

Writes text corpora of growing size (documents of real sentences from gensim's Lee and
Wikipedia corpora, drawn at random), runs `lmtrain pretrain` on each in a fresh process with an
empty cache (so the tokenizer is trained, the corpus tokenized and the examples written from
scratch, then a few training steps run), and prints the run's peak resident memory and peak
anonymous memory (RSS without the pages of memory-mapped files) next to the corpus size.

    python scripts/corpus_memory.py                       # 50, 150 and 300 MB
    python scripts/corpus_memory.py --sizes-mb 20 200 --model gpt --keep
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def source_sentences() -> list[str]:
    """Sentences of the bundled corpora (the same reader `lmtrain pretrain` uses)."""
    from lmtrain.data.corpus import Corpus, bundled_file

    wiki = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    corpus = Corpus.from_files([bundled_file("lee_background.cor"), bundled_file(wiki)])
    return [s for doc in corpus for s in doc if len(s) > 20]


def write_corpus(path: Path, size_mb: int, sentences: list[str], seed: int) -> int:
    """A corpus of about ``size_mb`` MB: one document per line of 5-15 random sentences. Returns documents written."""
    rng = random.Random(seed)
    target, written, docs = size_mb * 1_000_000, 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            line = " ".join(rng.choices(sentences, k=rng.randint(5, 15))) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))
            docs += 1
    return docs


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (data-loader workers), from /proc."""
    pids, i = [pid], 0
    while i < len(pids):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            pids += [int(c) for c in Path(f"/proc/{pids[i]}/task/{pids[i]}/children").read_text().split()]
        i += 1
    return pids


def _anonymous_mb(pids: list[int]) -> float:
    """Anonymous memory (heap, not memory-mapped files) of ``pids`` in MB, pages shared after fork counted once."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss_Anon:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_pretrain(corpus: Path, workdir: Path, model: str, steps: int) -> tuple[float, float, float]:
    """Peak RSS (MB), peak anonymous memory of the process tree (MB) and wall seconds of one run.

    RSS counts the pages of memory-mapped example files that were read: the kernel drops those
    under memory pressure, so the anonymous memory is what a corpus larger than RAM must keep flat.
    """
    command = [
        sys.executable,
        "-m",
        "lmtrain",
        "pretrain",
        f"model={model}",
        "data=text",
        f"data.train_files=[{corpus}]",
        f"data.cache_dir={workdir / 'cache'}",
        f"trainer.max_steps={steps}",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "trainer.eval_batches=10",
        "data.eval_fraction=0.01",
        "trainer.progress=false",
        f"hydra.run.dir={workdir / 'run'}",
    ]
    log = workdir / "pretrain.log"
    started = time.perf_counter()
    anonymous = 0.0
    with open(log, "wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            anonymous = max(anonymous, _anonymous_mb(_process_tree(child.pid)))
            time.sleep(0.2)
    seconds = time.perf_counter() - started
    if status != 0:
        sys.exit(f"lmtrain pretrain failed on {corpus}:\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / 1024, anonymous, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    """Print corpus size, documents, peak RSS and wall time for each size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[50, 150, 300])
    parser.add_argument("--model", default="gpt", help="bert | roberta | gpt | elmo")
    parser.add_argument("--steps", type=int, default=20, help="training steps after the data is prepared")
    parser.add_argument("--keep", action="store_true", help="keep the corpora and caches (printed path)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lmtrain-corpus-memory-"))
    sentences = source_sentences()
    print(f"model={args.model}, {args.steps} training steps after preparing the data; working in {root}")
    print(f"{'corpus MB':>10} {'documents':>10} {'peak RSS MB':>12} {'peak anon MB':>13} {'wall s':>8}")
    try:
        for size in args.sizes_mb:
            workdir = root / f"{size}mb"
            workdir.mkdir()
            corpus = workdir / "corpus.txt"
            docs = write_corpus(corpus, size, sentences, seed=size)
            peak, anonymous, seconds = run_pretrain(corpus, workdir, args.model, args.steps)
            print(
                f"{corpus.stat().st_size / 1e6:>10.0f} {docs:>10,} {peak:>12.0f} {anonymous:>13.0f} {seconds:>8.0f}",
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(workdir)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
