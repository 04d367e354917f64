"""Shared fixtures: composing configs like the CLI does, tiny corpora, running the CLI.

``pytest --cpu-kernels=torch`` (or ``LMTRAIN_CPU_KERNELS=torch pytest``) runs the session on PyTorch's
own CPU kernels instead of letting ``auto`` choose: CI runs the model tests both ways.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lmtrain.cli.main import config_dir
from lmtrain.config import register_configs


def pytest_addoption(parser):
    """``--cpu-kernels``: the CPU kernels of the whole session (default: ``$LMTRAIN_CPU_KERNELS`` or auto)."""
    parser.addoption(
        "--cpu-kernels",
        choices=("auto", "onednn", "torch-matmul", "torch"),
        default=os.environ.get("LMTRAIN_CPU_KERNELS", "auto"),
        help="CPU kernels for the session: auto | onednn | torch-matmul (PyTorch's products) | torch (PyTorch's ops)",
    )


def pytest_configure(config):
    """Put the session's CPU kernels in force (``auto`` is left to decide on first use, as in a run).

    In a pytest-xdist worker (the default: pyproject's ``addopts``) the worker and every command it starts
    run one thread, unless ``OMP_NUM_THREADS`` says otherwise.

    The session's caches (tokenized data, the CPU kernel choice) go to a temporary ``XDG_CACHE_HOME``, not
    the user's ``~/.cache/lmtrain``; it is removed at the end.

    Unless the session selects the tests marked ``cuda`` (``-m cuda``, as ``scripts/gpu_check.py`` does), the
    GPUs are hidden from it and from every command it starts, so on a GPU machine ``trainer.device=auto``
    still means the CPU and the suite tests what it tests everywhere else.
    """
    if not hasattr(config, "workerinput"):  # the controller; xdist workers inherit its environment
        config.cache_home = tempfile.mkdtemp(prefix="lmtrain-test-cache-")
        os.environ["XDG_CACHE_HOME"] = config.cache_home
    if "cuda" not in (config.getoption("-m") or ""):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        # a worker beside others: one thread each (and in the commands it starts) rather than every
        # worker's threads contending for every core
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    choice = config.getoption("--cpu-kernels")
    if choice != "auto":
        from lmtrain.kernels import select_cpu_kernels

        select_cpu_kernels(choice, key="--cpu-kernels")


def pytest_unconfigure(config):
    """Remove the session's temporary cache home (see :func:`pytest_configure`)."""
    if getattr(config, "cache_home", None):
        shutil.rmtree(config.cache_home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_log_handler_on_a_closed_stream():
    """Drop log handlers left on a closed stream before each test.

    A command run in-process (Hydra's logging set-up) can leave a handler on the root logger bound to an
    earlier test's captured output; a later test's warning would then print a "Logging error" traceback.
    """
    for logger in (logging.getLogger(), logging.getLogger("lmtrain")):
        for handler in list(logger.handlers):
            stream = getattr(handler, "stream", None)
            if getattr(stream, "closed", False):
                logger.removeHandler(handler)
    yield


# A run of seconds: tiny model, small vocabulary, few steps (on top of the debug=tiny preset).
TINY = ["debug=tiny", "trainer.progress=false"]


def compose_config(command: str, overrides: list[str]):
    """The config `lmtrain <command> <overrides>` would run with (no Hydra run dir)."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name=command, overrides=overrides)


@pytest.fixture
def cache_dir(tmp_path_factory) -> Path:
    """A data cache shared by the tests of one module."""
    return tmp_path_factory.getbasetemp() / "lmtrain-cache"


def run_cli(*args: str, cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lmtrain <args>` in ``cwd`` and return the finished process."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lmtrain", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def text_data(folder: Path) -> list[str]:
    """Overrides that train on ``folder/corpus.txt`` with a data cache in ``folder``."""
    return ["data=text", f"data.train_files=[{folder / 'corpus.txt'}]", f"data.cache_dir={folder / 'cache'}"]


def wait_for_metrics(run_dir: Path, events: int = 2, timeout: float = 120) -> None:
    """Block until a running run has logged ``events`` lines of metrics (or ``timeout`` seconds passed)."""
    import time

    deadline = time.time() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= events):
        time.sleep(0.2)


def write_corpus(path: Path, n_docs: int = 40, seed: int = 0) -> Path:
    """A small English-like corpus, one document per line, with repeated structure to learn."""
    import random

    rng = random.Random(seed)
    subjects = ["The farmer", "A teacher", "The pilot", "My neighbour", "The doctor", "A child", "The police"]
    verbs = ["visited", "painted", "repaired", "sold", "found", "watched", "cleaned"]
    objects = ["the old barn", "a red car", "the small boat", "the long fence", "a new house", "the garden"]
    tails = ["in the morning.", "after the storm.", "before lunch.", "with great care.", "on Sunday."]
    lines = []
    for _ in range(n_docs):
        sentences = [
            f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}"
            for _ in range(rng.randint(4, 9))
        ]
        lines.append(" ".join(sentences))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def stopping_after_step(step: int):
    """Within the block the Trainer stops after ``step`` as Ctrl-C makes it: finish the step, save, exit."""
    from lmtrain.training.trainer import Trainer

    original = Trainer._train_step

    def train_step(self, sums):
        original(self, sums)
        if self.state.step == step:
            self.stops.requested = True

    Trainer._train_step = train_step
    try:
        yield
    finally:
        Trainer._train_step = original


def objective_plug(node):
    """The pretraining objective plug a composed ``objective`` node names (what `lmtrain pretrain` builds)."""
    from omegaconf import OmegaConf

    from lmtrain.plugs import plug_class

    return plug_class(node, "objective")(OmegaConf.to_object(node))


def loss_objective(name: str):
    """The loss (an ``Objective``) a built-in pretraining objective called ``name`` trains with."""
    from lmtrain.objectives.text_objectives import objective_from_meta

    return objective_from_meta({"objective": name}).loss(None, 1)
