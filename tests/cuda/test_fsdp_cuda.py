"""FSDP on CUDA (NCCL): run by ``python scripts/gpu_check.py`` on a machine with a GPU, skipped elsewhere.

The model built on the meta device and materialised on the GPU, the bf16 policy (bf16 all-gathers, bf16 or fp32
reduce-scatters over NCCL) and the 2-D mesh (HSDP), which the CPU tests run over gloo only.
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
multi_gpu = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")

RUN = [
    "debug=tiny",
    "trainer.progress=false",
    "trainer.device=cuda",
    "trainer.log_every=1",
    "trainer.eval_every=0",
    "trainer.precision=bf16",
    "trainer.max_steps=40",
    "trainer.eval_at_start=true",
    "model.dropout=0",
    "model.attention_dropout=0",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fsdp-cuda")
    write_corpus(folder / "corpus.txt", n_docs=60)
    return folder


def _train(workdir: Path, name: str, *args: str, nproc: int) -> dict:
    """A bf16 run of ``nproc`` processes; its summary with the train losses by step."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "lmtrain",
            "pretrain",
            *RUN,
            *text_data(workdir),
            *args,
            f"hydra.run.dir={workdir / name}",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    events = [json.loads(line) for line in (workdir / name / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((workdir / name / "summary.json").read_text())
    return {**summary, "losses": {e["step"]: e["train/loss"] for e in events if "train/loss" in e}}


@pytest.fixture(scope="module")
def single(workdir) -> dict:
    return _train(workdir, "single", nproc=1)


@pytest.fixture(scope="module")
def ddp(workdir) -> dict:
    return _train(workdir, "ddp-2", "trainer.strategy=ddp", nproc=2)


def _falls(losses: dict[int, float]) -> bool:
    steps = sorted(losses)
    first, last = sum(losses[s] for s in steps[:5]) / 5, sum(losses[s] for s in steps[-5:]) / 5
    return last < first - 0.1


@pytest.mark.parametrize("reduce", [[], ["trainer.fsdp_reduce_fp32=true"]], ids=["bf16-reduce", "fp32-reduce"])
def test_one_gpu_fsdp_bf16_trains_from_a_meta_built_model(workdir, single, reduce):
    run = _train(workdir, f"fsdp-1-{len(reduce)}", "trainer.strategy=fsdp", *reduce, nproc=1)
    assert _falls(run["losses"]), run["losses"]
    # the same initial weights as a normal build: the evaluation at step 0 agrees up to bf16 rounding
    assert abs(run["start/loss"] - single["start/loss"]) < 2e-2, (run["start/loss"], single["start/loss"])


@multi_gpu
@pytest.mark.parametrize(
    "mesh", [[], ["trainer.fsdp_replicas=2"], ["trainer.fsdp_replicas=1"]], ids=["flat", "hsdp-2x1", "hsdp-1x2"]
)
def test_two_gpus_fsdp_bf16_follows_ddp(workdir, ddp, mesh):
    fsdp = _train(workdir, f"fsdp-2-{mesh[0][-1] if mesh else 'flat'}", "trainer.strategy=fsdp", *mesh, nproc=2)
    assert _falls(fsdp["losses"])
    assert all(abs(fsdp["losses"][s] - ddp["losses"][s]) < 5e-2 for s in range(1, 11)), (fsdp["losses"], ddp["losses"])
    assert abs(fsdp["eval/loss"] - ddp["eval/loss"]) < 5e-2
