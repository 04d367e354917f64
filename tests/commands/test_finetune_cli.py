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
