"""Run directories made by tiny real runs: a 2-job sweep, and copies of its jobs in other states."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli, write_corpus

# seconds, not minutes: 6 steps, a 200-token vocabulary, a 40-document corpus
FAST = [
    "model=bert",
    "tokenizer.vocab_size=200",
    "trainer.max_steps=6",
    "trainer.log_every=2",
    "trainer.eval_every=3",
    "trainer.save_every=3",
]


def tiny_overrides(root: Path) -> list[str]:
    """Overrides of a run of a few seconds on a small corpus under ``root``."""
    corpus = root / "corpus.txt"
    if not corpus.exists():
        write_corpus(corpus, n_docs=40)
    return [*TINY, *FAST, "data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={root / 'cache'}"]


def make_old(path: Path, seconds: float = 3600) -> None:
    """Set every file's modification time ``seconds`` into the past (a run that is not running)."""
    past = time.time() - seconds
    for file in [path, *path.rglob("*")]:
        if not file.is_symlink():
            os.utime(file, (past, past))


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> Path:
    """A finished 2-job sweep (optim.lr=1e-3,3e-3), with the TensorBoard logger when installed."""
    root = tmp_path_factory.mktemp("sweep")
    sweep_dir = root / "multirun" / "lr"
    loggers = "[jsonl,tensorboard]" if importlib.util.find_spec("tensorboard") else "[jsonl]"
    result = run_cli(
        "pretrain",
        "-m",
        *tiny_overrides(root),
        f"trainer.loggers={loggers}",
        "optim.lr=1e-3,3e-3",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir / "stdout.txt").write_text(result.stdout)  # what the sweep printed, for the summary test
    return sweep_dir


@pytest.fixture(scope="session")
def zoo(sweep, tmp_path_factory) -> dict[str, Path]:
    """Run directories by state, copied from the sweep's jobs: finished, interrupted, failed, failed_log."""
    root = tmp_path_factory.mktemp("zoo")
    runs = {"finished_a": sweep / "0", "finished_b": sweep / "1"}
    for name in ("interrupted", "failed", "failed_log"):
        copy = root / name
        shutil.copytree(sweep / "0", copy, symlinks=True)
        (copy / "summary.json").unlink()  # the run never got to the end
        (copy / "status.json").unlink()  # ... nor said how it ended: a run of an older version, or killed
        runs[name] = copy
    shutil.rmtree(runs["failed"] / "checkpoints")  # ... nor to a checkpoint
    with open(runs["failed_log"] / "pretrain.log", "a", encoding="utf-8") as log:
        log.write("[2024-05-01 12:00:00,000][lmtrain][ERROR] - CUDA out of memory\n")
    for name in ("interrupted", "failed", "failed_log"):
        make_old(runs[name])
    return runs
