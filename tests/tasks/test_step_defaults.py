"""A task's default number of steps depends on the backbone; an explicit trainer.max_steps always wins."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from lmtrain.commands import finetune
from lmtrain.errors import UserError
from lmtrain.tasks.step_defaults import task_max_steps
from tests.commands.test_finetune import ner_files, run_command
from tests.conftest import TINY, compose_config, run_cli
from tests.tasks.fixtures import make_checkpoint, ner_sentence, write_task_files

QUICK = [
    "trainer.progress=false",
    "trainer.batch_size=16",
    "trainer.eval_every=0",
    "trainer.preflight=false",
    "data.max_seq_len=32",
]


def test_the_ner_preset_leaves_the_steps_to_the_backbone():
    cfg = compose_config("finetune", ["task=ner"])
    assert cfg.trainer.max_steps is None
    steps = cfg.task.max_steps_by_backbone
    assert steps["elmo"] == 1200 and steps["default"] == 400  # a frozen ELMo's task model learns from scratch


def test_the_backbone_picks_its_default_and_an_explicit_value_wins():
    task = compose_config("finetune", ["task=ner"]).task
    steps, why = task_max_steps(task, None, "elmo")
    assert steps == 1200 and "task=ner's default for an elmo backbone" in why and "default: 400" in why
    steps, why = task_max_steps(task, None, "bert")
    assert steps == 400 and "task=ner's default for a bert backbone" in why and "elmo: 1200" in why
    assert task_max_steps(task, 77, "elmo") == (77, "trainer.max_steps")


def test_a_table_without_the_backbone_or_a_default_is_refused():
    task = SimpleNamespace(name="ner", max_steps_by_backbone={"elmo": 1200})
    with pytest.raises(
        UserError,
        match=r"task.max_steps_by_backbone, which has no entry for a bert backbone.*"
        r"give trainer.max_steps=N",
    ):
        task_max_steps(task, None, "bert")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("step-defaults")
    (root / "data").mkdir()
    data = write_task_files(root / "data")
    rng = random.Random(0)
    texts = [" ".join(w for w, _ in ner_sentence(rng)) for _ in range(200)]
    return data, make_checkpoint(root / "bert", causal=False, texts=texts)


def test_a_finetune_run_trains_its_backbones_default_and_says_which(tagged, tmp_path, caplog):
    data, backbone = tagged
    table = ["task.max_steps_by_backbone.default=6", "+task.max_steps_by_backbone.bert=4"]
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary = run_command(
            finetune,
            "finetune",
            tmp_path / "default",
            ["task=ner", f"init={backbone}", *QUICK, *table, *ner_files(data)],
        )
    assert summary["steps"] == 4 and summary["config"]["trainer"]["max_steps"] == 4
    plan = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: "))
    assert plan.startswith("plan: 4 steps (trainer.max_steps=4: task=ner's default for a bert backbone"), plan


def test_an_explicit_max_steps_wins_over_the_backbones_default(tagged, tmp_path, caplog):
    data, backbone = tagged
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary = run_command(
            finetune,
            "finetune",
            tmp_path / "explicit",
            [
                "task=ner",
                f"init={backbone}",
                *QUICK,
                "+task.max_steps_by_backbone.bert=4",
                "trainer.max_steps=3",
                *ner_files(data),
            ],
        )
    assert summary["steps"] == 3
    plan = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: "))
    assert plan.startswith("plan: 3 steps (trainer.max_steps) x 16 sequences"), plan


def test_pretraining_without_a_number_of_steps_is_refused(tmp_path):
    out = run_cli("pretrain", *TINY, "trainer.max_steps=null", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "trainer.max_steps=null" in out.stderr and "give trainer.max_steps=N" in out.stderr
