"""`lmtrain finetune` and `lmtrain predict` as a user runs them: subprocesses, bundled data, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import run_cli
from tests.tasks.fixtures import make_checkpoint


def test_finetune_without_a_pretrained_run_says_what_to_run(tmp_path):
    out = run_cli("finetune", "task=ner", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    message = " ".join(out.stderr.split())
    assert "no pretrained backbone to fine-tune" in message and "`lmtrain pretrain model=bert`" in message
    assert "init=scratch" in message and "Traceback" not in out.stderr


def test_bundled_ner_after_pretrain_then_predict_from_stdin(tmp_path):
    # stands in for `lmtrain pretrain model=bert`: a checkpoint in the same run-directory layout
    make_checkpoint(
        tmp_path / "outputs" / "pretrain" / "bert",
        causal=False,
        texts=["Mr Arafat met John Howard in Sydney .", "The Taliban fled Kandahar ."] * 10,
    )
    out = run_cli(
        "finetune",
        "task=ner",
        "trainer.max_steps=4",
        "trainer.eval_every=0",
        "trainer.progress=false",
        "hydra.run.dir=ft",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert summary["init"] == "outputs/pretrain/bert" and summary["steps"] == 4
    assert {"eval/f1", "eval/precision", "eval/recall", "baseline/lexicon_f1"} <= set(summary)
    assert {"B-PER", "B-LOC", "B-ORG"} <= set(summary["labels"])
    predicted = subprocess.run(
        [sys.executable, "-m", "lmtrain", "predict", "ckpt=ft", "input=-", "hydra.run.dir=p"],
        cwd=tmp_path,
        input="John Howard flew to Sydney .\n\nThe Taliban fled .\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == ""  # one line per input line: an empty one for the blank input


def test_a_second_run_on_the_same_data_reads_its_examples_from_the_cache_and_trains_alike(tmp_path):
    from tests.tasks.fixtures import write_sentiment_tsv

    make_checkpoint(tmp_path / "bert", causal=False, texts=["the film was great and long", "the show was dull"] * 10)
    train, dev = write_sentiment_tsv(tmp_path / "train.tsv", 120, 0), write_sentiment_tsv(tmp_path / "dev.tsv", 40, 1)
    common = ["task=classification", "init=bert", f"data.train_file={train}", f"data.eval_file={dev}"]
    common += ["trainer.max_steps=6", "trainer.eval_every=0", "trainer.progress=false", "data.cache_dir=cache"]
    common += ["finetune.head_dropout=0.1"]  # randomness on: both runs draw the same masks from the same seed
    first = run_cli("finetune", *common, "hydra.run.dir=one", cwd=tmp_path)
    second = run_cli("finetune", *common, "hydra.run.dir=two", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    logs = [(tmp_path / run / "finetune.log").read_text() for run in ("one", "two")]
    assert "using cached examples" not in logs[0] and "using cached examples" in logs[1]
    losses = [
        [
            (r["step"], r[key])
            for r in map(json.loads, (tmp_path / run / "metrics.jsonl").open())
            for key in r
            if "loss" in key
        ]
        for run in ("one", "two")
    ]
    assert len(losses[0]) >= 2 and losses[0] == losses[1]  # train and held-out losses alike


def test_data_cache_dir_is_refused_for_retrieval_which_encodes_at_every_run(tmp_path):
    out = run_cli("finetune", "task=retrieval", "data.cache_dir=cache", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    message = " ".join(out.stderr.split())
    assert "data.cache_dir" in message and "is read only by no source" in message and "Traceback" not in out.stderr
