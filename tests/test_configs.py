"""Every YAML under configs/ composes into its command's typed config."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lmtrain.cli import COMMANDS, config_dir
from lmtrain.config_checks import check_config
from tests.conftest import compose_config

CONFIGS = config_dir()
GROUP_COMMAND = {"model": "pretrain", "tokenizer": "pretrain", "data": "pretrain", "objective": "pretrain",
                 "optim": "pretrain", "trainer": "pretrain", "debug": "pretrain", "experiment": "pretrain",
                 "method": "embed", "task": "finetune"}


def _group_options():
    for group, command in GROUP_COMMAND.items():
        for path in sorted((CONFIGS / group).glob("*.yaml")):
            # an experiment is a recipe of either command: a fine-tuning one picks a task
            recipe = "finetune" if group == "experiment" and "override /task" in path.read_text() else command
            yield recipe, group, path.stem


@pytest.mark.parametrize("command", [c for c in COMMANDS if (CONFIGS / f"{c}.yaml").exists()])
def test_primary_configs_compose(command):
    cfg = compose_config(command, [])
    assert OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    check_config(cfg, command)  # every shipped value is in its range


@pytest.mark.parametrize("command,group,option", list(_group_options()))
def test_every_group_option_composes(command, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "text":
        overrides.append("data.train_files=[a.txt]")
    cfg = compose_config(command, overrides)
    assert OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    check_config(cfg, command)  # every shipped value is in its range


def test_every_config_file_starts_with_a_comment():
    for path in Path(CONFIGS).rglob("*.yaml"):
        first = path.read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), f"{path} must start with a comment saying what it is"


def test_model_preset_picks_objective_and_override_wins():
    assert compose_config("pretrain", ["model=bert"]).objective.name == "mlm_nsp"
    assert compose_config("pretrain", ["model=bert", "objective=mlm"]).objective.name == "mlm"
