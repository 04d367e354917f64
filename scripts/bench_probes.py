"""Measurements `bench.py` takes besides speed: peak memory of a piece of work, and how long the
real training loop waits for data."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import select
import signal
import tempfile
import time
from pathlib import Path

import torch


def _resident_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _forget_earlier_peaks() -> None:
    """Return freed heap pages to the system and reset the high-water mark (Linux, glibc)."""
    try:  # otherwise fn could reuse memory the parent freed, which is resident and never counted
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size
    except OSError:
        pass


def peak_memory_mib(fn, device: torch.device) -> float | None:
    """Peak memory of ``fn()`` above what was resident before it (MiB); None where not measurable.

    CUDA: the caching allocator's peak. CPU (Linux): ``fn`` runs in a forked child that first
    hands freed heap pages back and resets its resident-set high-water mark, so the growth of
    that mark is ``fn``'s alone.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    if not (hasattr(os, "fork") and os.path.exists("/proc/self/status")):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report through the pipe, leave without cleanup
        try:
            # The parent's OpenMP pool does not survive fork; a multi-threaded kernel here would
            # wait for it forever. Memory does not depend on the thread count.
            torch.set_num_threads(1)
            _forget_earlier_peaks()
            start = _resident_kib("VmRSS:")
            fn()
            os.write(write, str(_resident_kib("VmHWM:") - start).encode())
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 600)
    report = os.read(read, 64).decode() if ready else ""
    os.close(read)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return int(report) / 1024 if report else None


def bench_data_wait(model_name: str, size: str, args) -> dict:
    """Share of training-step time the lmtrain loop spends blocked on its DataLoader.

    A real `lmtrain pretrain` run (bundled corpus: tokenized, packed, masked, cached, then read
    through the trainer's DataLoader) whose trainer also times each wait for the next batch.
    """
    from hydra import compose, initialize_config_dir

    from lmtrain.cli.main import config_dir
    from lmtrain.commands import pretrain
    from lmtrain.config import register_configs
    from lmtrain.training.trainer import Trainer  # noqa: F811 (the module-level import is ObjectiveStep)

    class TimedTrainer(Trainer):
        data_seconds = 0.0

        def _next_batch(self):
            start = time.perf_counter()
            batch = super()._next_batch()
            TimedTrainer.data_seconds += time.perf_counter() - start
            return batch

    overrides = [
        f"model={model_name}",
        f"model.size={size}",
        f"trainer.max_steps={args.data_steps}",
        f"trainer.batch_size={args.batch}",
        f"data.max_seq_len={args.seq}",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "trainer.eval_batches=1",
        "trainer.progress=false",
        f"trainer.device={args.device}",
        f"trainer.precision={args.precision}",
        f"trainer.num_workers={args.num_workers}",
    ]
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(config_name="pretrain", overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.data.cache_dir = str(Path(tmp) / "cache")
        cwd = os.getcwd()
        os.chdir(tmp)  # the run directory
        original, pretrain.Trainer = pretrain.Trainer, TimedTrainer
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # the run's own summary table
                summary = pretrain.run(cfg)
        finally:
            pretrain.Trainer = original
            os.chdir(cwd)
    share = TimedTrainer.data_seconds / summary["train_seconds"]
    return {
        "model": model_name,
        "size": size,
        "steps": summary["steps"],
        "num_workers": args.num_workers,
        "data_wait_share": share,
        "train_seconds": summary["train_seconds"],
    }
