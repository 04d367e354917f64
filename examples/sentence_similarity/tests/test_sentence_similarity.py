"""The sentence-similarity example: a task of a user's own (regression head, Pearson / Spearman, its own predict
keys) run from outside src/ through every command that applies to a fine-tuned run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1]
ROOT = EXAMPLE.parents[1]
sys.path.insert(0, str(EXAMPLE))

from sentence_similarity.objective import pearson, spearman  # noqa: E402

LIVING = ["cat", "dog", "bird", "horse", "cow", "fish", "goat", "lion", "sheep"]
THINGS = ["car", "road", "bus", "train", "truck", "bike", "ship", "plane", "house"]
SEARCH_PATH = f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]"
QUIET = ["trainer.progress=false", "trainer.preflight=false", "trainer.max_time=null"]


def _pair(rng: random.Random) -> tuple[str, str, float]:
    """Two 6-word sentences, each a mix of living things and things: the more alike the mix, the higher the score
    (5 for the same share of living things, 0 for all living against none)."""
    a, b = rng.randint(0, 6), rng.randint(0, 6)
    first, second = rng.sample(LIVING, a) + rng.sample(THINGS, 6 - a), rng.sample(LIVING, b) + rng.sample(THINGS, 6 - b)
    rng.shuffle(first)
    rng.shuffle(second)
    return " ".join(first), " ".join(second), round(5 * (1 - abs(a - b) / 6), 3)


def _write_pairs(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    path.write_text("sentence1\tsentence2\tscore\n" + "".join("\t".join(map(str, _pair(rng))) + "\n" for _ in range(n)))


def _lmtrain(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`lmtrain <args>` with the example's package on PYTHONPATH, as README's "Add your own" section runs it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "lmtrain", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _refused(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert fragment in " ".join(result.stderr.split())


def test_the_correlations_are_those_of_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    y[::5] = y[0]  # ties
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert pearson(x, np.ones(50)) == 0.0  # a constant prediction correlates with nothing


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny BERT pretrained on the pairs' words, fine-tuned on the similarity task (no dropout: the scores are
    exact, and 600 steps learn them under either kernel set)."""
    tmp = tmp_path_factory.mktemp("similarity")
    _write_pairs(tmp / "train.tsv", 800, 1)
    _write_pairs(tmp / "dev.tsv", 100, 2)
    rng = random.Random(3)
    (tmp / "corpus.txt").write_text("".join(" ".join(rng.sample(LIVING + THINGS, 8)) + "\n" for _ in range(300)))
    _ok(
        _lmtrain(
            "pretrain",
            "model=bert",
            "debug=tiny",
            "data=text",
            f"data.train_files=[{tmp / 'corpus.txt'}]",
            f"data.cache_dir={tmp / 'cache'}",
            "data.max_seq_len=32",
            "trainer.max_steps=10",
            "trainer.eval_every=0",
            "trainer.save_every=0",
            "model.dropout=0",
            "model.attention_dropout=0",
            *QUIET,
            f"hydra.run.dir={tmp / 'bert'}",
            cwd=tmp,
        )
    )
    _ok(
        _lmtrain(
            "finetune",
            "task=similarity",
            SEARCH_PATH,
            f"init={tmp / 'bert'}",
            f"data.train_file={tmp / 'train.tsv'}",
            f"data.eval_file={tmp / 'dev.tsv'}",
            "data.max_seq_len=16",
            "trainer.max_steps=600",
            "trainer.batch_size=32",
            "trainer.eval_every=150",
            "trainer.log_every=10",
            "optim.lr=3e-3",
            "finetune.head_dropout=0",
            *QUIET,
            f"hydra.run.dir={tmp / 'run'}",
            cwd=tmp,
        )
    )
    return tmp / "run"


def test_finetune_learns_the_scores_with_its_own_head(run):
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [e["train/loss"] for e in events if "train/loss" in e]
    pearsons = [e["eval/pearson"] for e in events if "eval/pearson" in e]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3
    assert pearsons[-1] > pearsons[0] + 0.3 and pearsons[-1] > 0.8, pearsons
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval/loss"] < summary["baseline/mean_loss"] and "eval/spearman" in summary
    saved = json.loads((run / "checkpoints" / "best" / "model.json").read_text())
    assert saved["task_heads"]["regressor"] == {
        "kind": "sentence_similarity.head.RegressionHead",
        "dropout": 0.0,
        "max_score": 5.0,
    }


def test_a_second_run_reads_the_encoded_pairs_and_their_scores_from_the_cache(run, tmp_path):
    data = run.parent
    keys = [SEARCH_PATH, f"init={data / 'bert'}", f"data.train_file={data / 'train.tsv'}"]
    keys += [f"data.eval_file={data / 'dev.tsv'}", f"data.cache_dir={tmp_path / 'cache'}", "data.max_seq_len=16"]
    keys += ["trainer.max_steps=8", "trainer.eval_every=4", "trainer.log_every=2", "finetune.head_dropout=0.1", *QUIET]
    for name in ("first", "second"):
        _ok(_lmtrain("finetune", "task=similarity", *keys, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path))
    logs = [(tmp_path / name / "finetune.log").read_text() for name in ("first", "second")]
    assert "using cached examples" not in logs[0] and "using cached examples" in logs[1]
    losses = [
        [
            (e["step"], e[k])
            for e in map(json.loads, (tmp_path / name / "metrics.jsonl").open())
            for k in e
            if "loss" in k
        ]
        for name in ("first", "second")
    ]
    assert len(losses[0]) >= 4 and losses[0] == losses[1]  # the same pairs and scores: the same run


def test_predict_prints_a_score_per_pair_with_the_tasks_own_keys(run, tmp_path):
    result = _ok(
        _lmtrain(
            "predict",
            f"ckpt={run}",
            "input=-",
            "task.decimals=3",
            cwd=tmp_path,
            stdin="cat dog bird horse cow fish\tgoat lion sheep cat dog bird\n"
            "cat dog bird horse cow fish\tcar road bus train truck bike\n",
        )
    )
    same, different = map(float, result.stdout.split())
    assert 0 <= different < same <= 5
    _refused(
        _lmtrain("predict", f"ckpt={run}", "input=-", "task.top_k=3", cwd=tmp_path, stdin="a\tb\n"),
        "task.top_k=3 is not read by the run's task (similarity",
    )


def test_export_writes_its_weights_and_refuses_a_hugging_face_folder(run, tmp_path):
    _ok(_lmtrain("export", f"ckpt={run}", "format=safetensors", f"out={tmp_path / 'weights'}", cwd=tmp_path))
    result = _ok(
        _lmtrain("predict", f"ckpt={tmp_path / 'weights'}", "input=-", cwd=tmp_path, stdin="cat dog\tlion sheep\n")
    )
    assert 0 <= float(result.stdout) <= 5
    _refused(
        _lmtrain("export", f"ckpt={run}", "format=hf", f"out={tmp_path / 'hf'}", cwd=tmp_path),
        "has no Hugging Face architecture; export it with format=safetensors",
    )


def test_an_option_the_task_declares_unread_is_refused_before_the_run(tmp_path):
    _refused(
        _lmtrain(
            "finetune",
            "task=similarity",
            SEARCH_PATH,
            "finetune.class_weights=auto",
            f"hydra.run.dir={tmp_path / 'run'}",
            cwd=tmp_path,
        ),
        "finetune.class_weights=auto is not read by task=similarity: a similarity score has no classes to weight",
    )
    assert not (tmp_path / "run").exists()


def test_evaluate_says_it_scores_pretraining_checkpoints(run, tmp_path):
    _refused(_lmtrain("evaluate", f"ckpt={run}", cwd=tmp_path), "evaluate a pretraining checkpoint")


def test_resume_continues_the_run(run):
    _ok(_lmtrain("resume", str(run), "trainer.max_steps=620", cwd=run.parent))  # the run recorded its search path
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(e.get("step", 0) for e in events) == 620


def test_nothing_in_lmtrain_names_the_example():
    named = [
        path
        for path in sorted((ROOT / "src" / "lmtrain").rglob("*"))
        if path.is_file() and path.suffix in (".py", ".yaml") and "sentence_similarity" in path.read_text()
    ]
    assert named == []
