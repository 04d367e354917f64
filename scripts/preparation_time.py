"""Time of tokenizing a corpus and building its examples with 1, 2, ... processes (``data.num_proc``).

Writes a text corpus of real sentences (as ``corpus_memory.py`` does), trains its tokenizer once,
then prepares the examples from scratch with each number of processes and prints the wall time
and the speed-up over one process. Every count gives the same examples (checked by their digest).

    python scripts/preparation_time.py                          # 40 MB, gpt and bert, 1 and 2 processes
    python scripts/preparation_time.py --size-mb 100 --models roberta --num-proc 1 2 4

:func:`preparation_seconds` is the measurement, for other scripts to call.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from corpus_memory import source_sentences, write_corpus
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from lmtrain.cli.main import config_dir
from lmtrain.config import register_configs
from lmtrain.data.pretraining import PretrainingPreparation, read_tokenizer_text
from lmtrain.plugs import plug_class


@dataclass
class PreparationTime:
    """One preparation: its wall time, the examples it wrote and their digest."""

    seconds: float
    examples: int
    digest: str


def preparation_seconds(
    corpus: Path, num_proc: int, cache_dir: Path, model: str = "gpt", overrides: tuple[str, ...] = ()
) -> PreparationTime:
    """Prepare the examples of ``corpus`` from scratch with ``num_proc`` processes and time it.

    The tokenizer is trained on the first call for a ``cache_dir`` and reused after, so only the
    tokenizing and example building are timed. The caller's script must guard its entry point with
    ``if __name__ == "__main__":`` (worker processes import it again).

    Args:
        corpus: a text file, one document per line.
        num_proc: worker processes (``data.num_proc``).
        cache_dir: the ``data.cache_dir`` (its examples are removed first).
        model: the model preset whose objective's examples are built (gpt, roberta, bert ...).
        overrides: more `lmtrain pretrain` overrides (``data.max_seq_len=512`` ...).
    """
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(
            config_name="pretrain",
            overrides=[
                f"model={model}",
                "data=text",
                f"data.train_files=[{corpus}]",
                f"data.cache_dir={cache_dir}",
                f"data.num_proc={num_proc}",
                *overrides,
            ],
        )
    recipe = plug_class(cfg.objective, "objective")(OmegaConf.to_object(cfg.objective))
    data_cfg, tok_cfg = OmegaConf.to_object(cfg.data), OmegaConf.to_object(cfg.tokenizer)
    preparation = PretrainingPreparation(data_cfg, tok_cfg)
    tokenizer, path = preparation.tokenizer()
    shutil.rmtree(cache_dir / "examples", ignore_errors=True)
    started = time.perf_counter()
    data = preparation.examples(tokenizer, read_tokenizer_text(path), recipe)
    seconds = time.perf_counter() - started
    return PreparationTime(seconds, len(data.train) + len(data.eval), data.train.content_digest())


def main() -> None:
    """Print the preparation time of each model with each number of processes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=40)
    parser.add_argument("--models", nargs="+", default=["gpt", "bert"])
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lmtrain-preparation-time-"))
    try:
        corpus = root / "corpus.txt"
        docs = write_corpus(corpus, args.size_mb, source_sentences(), seed=args.size_mb)
        print(f"corpus: {corpus.stat().st_size / 1e6:.0f} MB, {docs:,} documents")
        print(f"{'model':>8} {'num_proc':>8} {'seconds':>8} {'speed-up':>8} {'examples':>10}")
        for model in args.models:
            times = {}
            for num_proc in args.num_proc:
                times[num_proc] = preparation_seconds(corpus, num_proc, root / f"cache-{model}", model)
                speedup = times[args.num_proc[0]].seconds / times[num_proc].seconds
                print(
                    f"{model:>8} {num_proc:>8} {times[num_proc].seconds:>8.1f} {speedup:>8.2f} "
                    f"{times[num_proc].examples:>10,}",
                    flush=True,
                )
            if len({t.digest for t in times.values()}) != 1:
                raise SystemExit(f"{model}: the examples differ between process counts")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
