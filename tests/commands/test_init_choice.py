"""`lmtrain finetune` without init=: the newest fitting pretrain run of this project, said first and recorded."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from lmtrain.commands import finetune
from lmtrain.errors import UserError
from lmtrain.tasks.backbone import newest_pretrain_run
from tests.commands.test_finetune import ner_files, run_command
from tests.tasks.fixtures import FAST, make_checkpoint, write_task_files

TEXTS = ["Alice visited Paris .", "the Acme Corp office in Lima hired Bob ."] * 10


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_task_files(tmp_path_factory.mktemp("task-data"))


def test_only_this_project_s_runs_are_candidates(tmp_path, monkeypatch):
    elsewhere = make_checkpoint(tmp_path / "other_project" / "outputs" / "pretrain" / "bert", causal=False, texts=TEXTS)
    project = tmp_path / "project"
    (project / "outputs" / "pretrain").mkdir(parents=True)
    os.symlink(elsewhere, project / "outputs" / "pretrain" / "linked_bert")  # another project's run, linked in
    monkeypatch.chdir(project)
    with pytest.raises(UserError, match="no pretrained backbone to fine-tune: no run under .*project/outputs/pretrain"):
        newest_pretrain_run(causal=False)
    own = make_checkpoint(project / "outputs" / "pretrain" / "own_bert", causal=False, texts=TEXTS)
    choice = newest_pretrain_run(causal=False)
    assert choice.run == Path("outputs/pretrain") / own.name
    assert choice.line.startswith(
        "init not given: fine-tuning the newest bidirectional (BERT / RoBERTa) pretrain "
        f"run of this project, outputs/pretrain/{own.name}"
    )
    assert "init=scratch" in choice.line


def test_the_choice_is_the_first_line_and_in_the_summary(data, tmp_path, caplog):
    bert = make_checkpoint(tmp_path / "outputs" / "pretrain" / "bert", causal=False, texts=TEXTS)
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary = run_command(
            finetune,
            "finetune",
            tmp_path,
            ["task=ner", *FAST, *ner_files(data), "trainer.max_steps=2", "trainer.eval_every=0"],
        )
    first = next(r.getMessage() for r in caplog.records if r.name.startswith("lmtrain"))
    assert first.startswith("init not given: fine-tuning the newest") and f"outputs/pretrain/{bert.name}" in first
    assert summary["init_chosen"] == first
    assert json.loads((tmp_path / "summary.json").read_text())["init_chosen"] == first

    # a newer fitting run appears; the run, resumed, keeps the backbone it started from
    newer = shutil.copytree(bert, tmp_path / "outputs" / "pretrain" / "newer_bert", symlinks=True)
    later = time.time() + 60
    os.utime((newer / "checkpoints" / "last").resolve(), (later, later))
    cfg = SimpleNamespace(init=None)
    context = SimpleNamespace(resume_from=tmp_path / "checkpoints" / "last")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert newest_pretrain_run(causal=False).run.name == "newer_bert"
        assert finetune._choose_init(cfg, None, context) == first and cfg.init == str(Path("outputs/pretrain/bert"))
    finally:
        os.chdir(cwd)
