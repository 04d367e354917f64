"""Every YAML under configs/ composes into its command's typed config."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lmtrain.cli.main import COMMANDS, config_dir
from lmtrain.commands.config_validation import check_config
from lmtrain.errors import UserError
from tests.conftest import compose_config

CONFIGS = config_dir()
GROUP_COMMAND = {
    "model": "pretrain",
    "tokenizer": "pretrain",
    "data": "pretrain",
    "objective": "pretrain",
    "optim": "pretrain",
    "trainer": "pretrain",
    "debug": "pretrain",
    "experiment": "pretrain",
    "method": "embed",
    "task": "finetune",
}


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


# options that need what the default model (BERT) lacks, and a preset that has it (objective=clm: a causal LM head)
_NEEDS_ITS_MODEL = {
    ("objective", "albef"): "albef",
    ("objective", "bilm"): "elmo",
    ("data", "shapes"): "albef",
    ("data", "captions"): "albef",
    ("objective", "clm"): "gpt",
}


def test_an_objective_refuses_a_model_family_it_does_not_train():
    with pytest.raises(
        UserError,
        match=r"objective=bilm needs forward and backward language models \(a biLM\), "
        r"which the chosen model model=bert \(transformer family\) lacks",
    ):
        check_config(compose_config("pretrain", ["objective=bilm"]), "pretrain")


def test_a_bidirectional_model_is_refused_a_causal_lm_objective():
    # it would learn to predict each next token while its attention sees that token
    with pytest.raises(
        UserError,
        match=r"objective=clm needs a causal LM head .*model=bert \(transformer family\) "
        r"lacks .*e\.g\. `lmtrain pretrain model=gpt objective=clm`",
    ):
        check_config(compose_config("pretrain", ["objective=clm", "tokenizer=gpt2_bpe"]), "pretrain")


@pytest.mark.parametrize("command,group,option", list(_group_options()))
def test_every_group_option_composes(command, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "text":
        overrides.append("data.train_files=[a.txt]")
    if command == "pretrain" and (group, option) in _NEEDS_ITS_MODEL:  # the default model (BERT) lacks what it needs
        overrides.insert(0, f"model={_NEEDS_ITS_MODEL[group, option]}")
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


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))
def test_debug_tiny_composes_with_every_model_preset(model):
    cfg = compose_config("pretrain", [f"model={model}", "debug=tiny"])
    check_config(cfg, "pretrain")
    assert cfg.model.d_model == 32 and cfg.trainer.max_steps == 20


def test_a_key_of_another_family_is_refused_naming_the_family():
    from lmtrain.cli.main import validate_overrides

    with pytest.raises(UserError, match="lstm_dim is not a key of the transformer model family") as refused:
        validate_overrides("pretrain", ["model=bert", "model.lstm_dim=4096"])
    assert "; the elmo model family reads it)" in str(refused.value)
    with pytest.raises(UserError, match="sg is not a key of the glove word-vector method") as refused:
        validate_overrides("embed", ["method=glove", "embed.sg=1"])
    assert "; the word2vec word-vector method reads it)" in str(refused.value)
    with pytest.raises(UserError, match="itc_weight is not a key of the masked_lm objective"):
        validate_overrides("pretrain", ["model=bert", "objective.itc_weight=5"])
    with pytest.raises(UserError, match="image_size is not a key of the text data schema"):
        validate_overrides("pretrain", ["model=bert", "data.image_size=384"])
