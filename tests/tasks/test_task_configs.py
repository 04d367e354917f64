"""Every task preset composes into the typed finetune config, with its metric's settings."""

from __future__ import annotations

import pytest

from lmtrain.cli.main import config_dir
from tests.conftest import compose_config

TASKS = sorted(p.stem for p in (config_dir() / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_task_preset_composes(task):
    cfg = compose_config("finetune", [f"task={task}"])
    assert cfg.task.name == task and cfg.data.max_seq_len > 0
    assert cfg.tokenizer.special_tokens  # a scratch tokenizer needs its special-token roles


def test_generation_preset_brings_a_gpt_tokenizer_for_scratch():
    cfg = compose_config("finetune", ["task=generation"])
    assert (
        cfg.model.causal and cfg.tokenizer.kind == "bpe" and set(cfg.tokenizer.special_tokens) == {"eos", "bos", "pad"}
    )


def test_predict_and_export_configs_compose():
    assert compose_config("predict", ["ckpt=x", "input=-"]).input == "-"
    assert compose_config("export", ["ckpt=x", "out=y"]).format == "hf"
