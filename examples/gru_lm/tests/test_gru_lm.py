"""The GRU example: a model family that is not a Transformer, run by lmtrain from outside src/ through every
command of a run's life (pretrain, evaluate, generate, export, continued pretraining, finetune, predict, resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1]
ROOT = EXAMPLE.parents[1]
SEARCH_PATH = f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]"
FAST = [
    "trainer.log_every=5",
    "trainer.eval_every=0",
    "trainer.progress=false",
    "trainer.preflight=false",
    "trainer.max_time=null",
    "trainer.batch_size=16",
    "optim.lr=1e-2",
]


def lmtrain(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`lmtrain ...` with the example's package on PYTHONPATH, as README's "Add your own" section says."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "lmtrain", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def losses(run: Path, key: str = "train/loss") -> list[float]:
    return [e[key] for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if key in e]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A corpus of runs of consecutive "words" from a random start (the next word follows from the last), and
    prompt -> completion pairs of the same kind."""
    work = tmp_path_factory.mktemp("gru")
    rng = np.random.default_rng(3)
    starts = rng.integers(60, size=300)
    (work / "corpus.txt").write_text("\n".join(" ".join(f"w{(s + i) % 60}" for i in range(24)) for s in starts) + "\n")
    pairs = [
        {
            "prompt": " ".join(f"w{(s + i) % 60}" for i in range(4)),
            "completion": " " + " ".join(f"w{(s + 4 + i) % 60}" for i in range(3)),
        }
        for s in range(60)
    ]
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return work


@pytest.fixture(scope="module")
def pretrained(work) -> Path:
    run = work / "pretrain"
    lmtrain(
        "pretrain",
        "model=gru",
        SEARCH_PATH,
        "trainer.max_steps=60",
        "data=text",
        f"data.train_files=[{work / 'corpus.txt'}]",
        "data.max_seq_len=32",
        f"data.cache_dir={work / 'cache'}",
        "tokenizer.vocab_size=300",
        f"hydra.run.dir={run}",
        *FAST,
    )
    return run


def test_pretrain_with_lmtrain_s_causal_lm_and_the_loss_falls(pretrained):
    summary = json.loads((pretrained / "summary.json").read_text())
    assert summary["objective"] == "clm" and summary["model"] == "gru"
    trained = losses(pretrained)
    assert np.mean(trained[-3:]) < np.mean(trained[:3]) - 1.0
    assert summary["eval/ppl"] < summary["baseline/unigram_ppl"] / 2
    meta = json.loads((pretrained / "checkpoints" / "last" / "model.json").read_text())
    assert meta["family"] == "gru" and meta["family_target"] == "gru_lm.family.GruFamily"


def test_evaluate_generate_and_export(pretrained, work):
    lmtrain("evaluate", f"ckpt={pretrained}", f"hydra.run.dir={work / 'evaluate'}")
    evaluated = json.loads((work / "evaluate" / "summary.json").read_text())
    trained = json.loads((pretrained / "summary.json").read_text())
    assert evaluated["eval/ppl"] == pytest.approx(trained["eval/ppl"], rel=1e-3)  # the same held-out split

    lmtrain(
        "generate",
        f"ckpt={pretrained}",
        "prompt=w3 w4 w5",
        "max_new_tokens=6",
        "greedy=true",
        f"hydra.run.dir={work / 'generate'}",
    )
    record = json.loads((work / "generate" / "generations.jsonl").read_text())
    assert record["new_tokens"] > 0 and record["completion"].split()[0] == "w6"  # it learnt what follows

    lmtrain("export", f"ckpt={pretrained}", "format=safetensors", f"out={work / 'exported'}")
    assert (work / "exported" / "model.safetensors").is_file()
    lmtrain(
        "evaluate",
        f"ckpt={work / 'exported'}",
        "data=text",
        f"data.train_files=[{work / 'corpus.txt'}]",
        "data.max_seq_len=32",
        f"data.cache_dir={work / 'cache'}",
        f"hydra.run.dir={work / 'evaluate-export'}",
    )


def test_continued_pretraining_starts_where_the_run_ended(pretrained, work):
    run = work / "continued"
    lmtrain(
        "pretrain",
        "model=gru",
        SEARCH_PATH,
        f"init={pretrained}",
        "trainer.max_steps=20",
        "data=text",
        f"data.train_files=[{work / 'corpus.txt'}]",
        "data.max_seq_len=32",
        f"data.cache_dir={work / 'cache'}",
        f"hydra.run.dir={run}",
        *FAST,
    )
    summary = json.loads((run / "summary.json").read_text())
    trained = json.loads((pretrained / "summary.json").read_text())
    assert summary["start/ppl"] == pytest.approx(trained["eval/ppl"], rel=1e-3)  # the pretrained weights, not new ones


def test_finetune_on_generation_then_predict(pretrained, work):
    run = work / "finetune"
    lmtrain(
        "finetune",
        "task=generation",
        f"init={pretrained}",
        f"data.train_file={work / 'pairs.jsonl'}",
        "trainer.max_steps=30",
        f"hydra.run.dir={run}",
        *FAST,
    )
    tuned = losses(run)
    assert np.mean(tuned[-2:]) < np.mean(tuned[:2])
    result = lmtrain("predict", f"ckpt={run}", "input=-", "task.max_new_tokens=4", stdin="w10 w11 w12 w13\n")
    assert result.stdout.split()[0] == "w14"


def test_resume_continues_the_run(pretrained, work):
    run = work / "resumed"
    common = [
        "data=text",
        f"data.train_files=[{work / 'corpus.txt'}]",
        "data.max_seq_len=32",
        f"data.cache_dir={work / 'cache'}",
        "tokenizer.vocab_size=300",
        f"hydra.run.dir={run}",
        *FAST,
    ]
    lmtrain("pretrain", "model=gru", SEARCH_PATH, "trainer.max_steps=20", *common)
    lmtrain("resume", str(run), "trainer.max_steps=40")  # the run remembers its search path
    events = [e for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "train/loss" in e]
    assert max(e["step"] for e in events) == 40
    assert json.loads((run / "checkpoints" / "last" / "model.json").read_text())["step"] == 40
    assert np.mean([e["train/loss"] for e in events[-2:]]) < np.mean([e["train/loss"] for e in events[:2]])
