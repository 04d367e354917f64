"""Training on CUDA: run by ``python scripts/gpu_check.py`` on a machine with a GPU, skipped elsewhere.

bf16 autocast and fp16 with a gradient scaler train (the loss falls), attention takes SDPA's fused
kernels, AdamW is the fused one, ``trainer.compile=true`` trains, and a resumed run continues with the
uninterrupted run's losses exactly (dropout on). With two or more GPUs: DDP and FSDP under torchrun,
with exact resume.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import text_data, write_corpus

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

RUN = ["debug=tiny", "trainer.progress=false", "trainer.device=cuda", "trainer.log_every=1", "trainer.eval_every=0"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cuda")
    write_corpus(folder / "corpus.txt", n_docs=60)
    return folder


def _losses(run_dir: Path) -> dict[int, float]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {e["step"]: e["train/loss"] for e in events if "train/loss" in e}


def _train(workdir: Path, name: str, *args: str, nproc: int = 1) -> dict[int, float]:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        if nproc > 1
        else [sys.executable]
    )
    out = subprocess.run(
        [*launcher, "-m", "lmtrain", "pretrain", *RUN, *text_data(workdir), *args, f"hydra.run.dir={workdir / name}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return _losses(workdir / name)


def _falls(losses: dict[int, float]) -> bool:
    steps = sorted(losses)
    first, last = sum(losses[s] for s in steps[:5]) / 5, sum(losses[s] for s in steps[-5:]) / 5
    return last < first - 0.1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(workdir, precision):
    losses = _train(workdir, f"mixed-{precision}", f"trainer.precision={precision}", "trainer.max_steps=60")
    assert _falls(losses), losses
    if precision == "fp16":  # the gradient scaler's state is saved for exact resume
        state = torch.load(workdir / "mixed-fp16" / "checkpoints" / "last" / "trainer_state.pt", weights_only=True)
        assert "scaler" in state


def test_attention_uses_sdpa_fused_kernels():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from lmtrain.models.spec import TransformerSpec
    from lmtrain.models.transformer import Transformer

    model = Transformer(
        TransformerSpec(vocab_size=100, n_layers=2, d_model=64, n_heads=4, d_ff=128, max_positions=64, causal=True)
    ).cuda()
    ids = torch.randint(0, 100, (4, 64), device="cuda")
    # with only the fused kernels allowed, a path that needs the math fallback raises instead of running
    with (
        sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]),
        torch.autocast("cuda", dtype=torch.bfloat16),
    ):
        model(ids).float().sum().backward()


def test_adamw_is_fused_on_cuda():
    from lmtrain.config import OptimConfig
    from lmtrain.training.optim import build_optimizer

    optimizer = build_optimizer(torch.nn.Linear(4, 4).cuda(), OptimConfig(), torch.device("cuda"))
    assert optimizer.defaults["fused"] is True


def test_compiled_training_step_trains(workdir):
    losses = _train(workdir, "compiled", "trainer.compile=true", "trainer.precision=bf16", "trainer.max_steps=60")
    assert _falls(losses), losses


def _resume_is_exact(workdir: Path, tag: str, *args: str, nproc: int = 1) -> None:
    common = ["trainer.max_steps=8", "trainer.save_every=4", "trainer.keep_last=0", *args]
    straight = _train(workdir, f"straight-{tag}", *common, nproc=nproc)
    resumed = _train(
        workdir,
        f"resumed-{tag}",
        *common,
        f"trainer.resume={workdir / f'straight-{tag}' / 'checkpoints' / 'step-4'}",
        nproc=nproc,
    )
    assert sorted(resumed) == [5, 6, 7, 8]
    assert [resumed[s] for s in range(5, 9)] == [straight[s] for s in range(5, 9)], (straight, resumed)


def test_resume_on_cuda_is_exact_with_dropout(workdir):
    _resume_is_exact(workdir, "single", "trainer.precision=bf16")


multi_gpu = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")


@multi_gpu
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus_resume_exactly(workdir, strategy):
    _resume_is_exact(workdir, strategy, f"trainer.strategy={strategy}", "trainer.precision=bf16", nproc=2)
