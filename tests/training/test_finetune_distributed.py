"""`lmtrain finetune` under torchrun (2 gloo processes on CPU): the same losses as one process with twice
the batch, rank 0's run directory with the world size in summary.json, a scratch tokenizer trained once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from lmtrain.run_folder.layout import read_metrics
from tests.tasks.fixtures import make_checkpoint, write_conll, write_pairs_jsonl, write_sentiment_tsv

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

# no dropout anywhere: the two set-ups draw their dropout masks differently
STEPS = [
    "trainer.progress=false",
    "trainer.max_steps=6",
    "trainer.log_every=1",
    "trainer.eval_every=0",
    "trainer.save_every=0",
    "trainer.preflight=false",
    "optim.lr=3e-3",
    "optim.warmup_steps=0",
    "data.max_seq_len=32",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft-ddp")
    write_conll(root / "train.conll", 96, seed=0)
    write_conll(root / "dev.conll", 16, seed=1)
    write_sentiment_tsv(root / "train.tsv", 96, seed=0)
    write_sentiment_tsv(root / "dev.tsv", 16, seed=1)
    words = [line.split()[0] for line in (root / "train.conll").read_text().splitlines() if line.strip()]
    texts = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    texts += (root / "train.tsv").read_text().splitlines()[1:]
    make_checkpoint(root / "backbone", causal=False, texts=texts)  # one fixed starting point for every run
    write_pairs_jsonl(root / "pairs.jsonl", 96, seed=0)
    pairs = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    make_checkpoint(root / "gpt", causal=True, texts=[p["prompt"] + p["completion"] for p in pairs])
    return root


def _finetune(workdir: Path, name: str, *args: str, nproc: int = 1) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        if nproc > 1
        else [sys.executable]
    )
    out = subprocess.run(
        [*launcher, "-m", "lmtrain", "finetune", *STEPS, *args, f"hydra.run.dir={name}"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir / name


def _losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e}


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize(
    "task,files",
    [
        ("ner", ["data.train_file=train.conll", "data.eval_file=dev.conll"]),
        ("classification", ["data.train_file=train.tsv", "data.eval_file=dev.tsv"]),
    ],
)
def test_two_ranks_match_one_process_with_twice_the_batch(workdir, task, files):
    common = [f"task={task}", f"init={workdir / 'backbone'}", "finetune.head_dropout=0", *files]
    ddp = _finetune(workdir, f"{task}-ddp", *common, "trainer.batch_size=4", nproc=2)
    single = _finetune(workdir, f"{task}-single", *common, "trainer.batch_size=8")
    ddp_losses, single_losses = _losses(ddp), _losses(single)
    assert sorted(ddp_losses) == list(range(1, 7))
    assert all(abs(ddp_losses[s] - single_losses[s]) < 1e-4 for s in ddp_losses), (ddp_losses, single_losses)
    assert ddp_losses[6] < ddp_losses[1]
    assert _summary(ddp)["world_size"] == 2 and _summary(single)["world_size"] == 1
    assert (ddp / "checkpoints" / "last" / "model.safetensors").exists()


def test_scratch_tokenizer_is_trained_once_and_shared(workdir):
    run = _finetune(
        workdir,
        "scratch-ddp",
        "task=classification",
        "init=scratch",
        "model.size=null",
        "model.n_layers=1",
        "model.d_model=32",
        "model.n_heads=2",
        "model.d_ff=64",
        "model.dropout=0",
        "model.attention_dropout=0",
        "tokenizer.vocab_size=200",
        "tokenizer.min_frequency=1",
        "data.train_file=train.tsv",
        "data.eval_file=dev.tsv",
        "trainer.batch_size=8",
        nproc=2,
    )
    summary = _summary(run)
    assert summary["world_size"] == 2 and summary["init"].startswith("scratch")
    losses = _losses(run)
    assert losses[6] < losses[1], losses
    meta = json.loads((run / "checkpoints" / "last" / "model.json").read_text())
    vocab = json.loads((run / "tokenizer.json").read_text())["model"]["vocab"]
    assert meta["spec"]["vocab_size"] == len(vocab)  # the model was built for the tokenizer rank 0 saved


def test_fsdp_generation_matches_one_process_and_samples_from_the_best_checkpoint(workdir):
    common = [
        "task=generation",
        f"init={workdir / 'gpt'}",
        "data.train_file=pairs.jsonl",
        "trainer.eval_every=3",
        "task.samples=2",
    ]
    fsdp = _finetune(workdir, "gen-fsdp", *common, "trainer.batch_size=4", "trainer.strategy=fsdp", nproc=2)
    single = _finetune(workdir, "gen-single", *common, "trainer.batch_size=8")
    fsdp_losses, single_losses = _losses(fsdp), _losses(single)
    assert all(abs(fsdp_losses[s] - single_losses[s]) < 1e-4 for s in range(1, 7)), (fsdp_losses, single_losses)
    summary = _summary(fsdp)
    assert summary["world_size"] == 2 and len(summary["samples"]) == 2
    assert summary["samples"] == _summary(single)["samples"]  # the same best weights, gathered on every rank
