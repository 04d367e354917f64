"""ALBEF under torchrun (2 gloo processes on CPU): the feature queues gather every rank's features."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from tests.commands.test_albef_cli import TINY_ALBEF

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)


def test_queues_hold_the_features_of_both_ranks(tmp_path):
    args = [
        *TINY_ALBEF,
        "data.shapes_train=64",
        "data.shapes_eval=16",
        "model.queue_size=32",
        "trainer.batch_size=4",
        "trainer.max_steps=3",
        "trainer.eval_every=0",
        "trainer.log_every=1",
        "hydra.run.dir=ddp",
    ]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "lmtrain",
            "pretrain",
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    weights = load_file(str(tmp_path / "ddp" / "checkpoints" / "last" / "model.safetensors"))
    # 3 steps x 2 ranks x 4 pairs: one process alone would have filled 12 slots
    assert int(weights["queue_ptr"]) == 24
    filled = weights["idx_queue"][0, :24]
    assert torch.all(filled >= 0) and torch.all(weights["idx_queue"][0, 24:] == -100)


def test_queue_size_must_fit_the_global_batch(tmp_path):
    args = [*TINY_ALBEF, "model.queue_size=24", "trainer.batch_size=8"]  # 24 fits 8, not 2 x 8
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "lmtrain",
            "pretrain",
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode != 0
    assert "model.queue_size=24 is not a multiple of the global batch size 16" in " ".join(out.stderr.split())
