"""`lmtrain --help` and `lmtrain <command> --help`: groups, options, and the keys of the chosen presets."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lmtrain.cli.main import config_dir, main
from lmtrain.config import PLUG_SCHEMAS, SCHEMAS, MaskingConfig, OptimConfig
from lmtrain.config.descriptions import field_descriptions

ROOT = Path(__file__).resolve().parents[1]
SPAN_EXAMPLE = ROOT / "examples" / "span_masking"


def _help(capsys, *args: str) -> str:
    main([*args, "--help"])
    return capsys.readouterr().out


def _key_line(text: str, key: str) -> str:
    """The help line of ``key`` (``  key=value  description``)."""
    lines = [line for line in text.splitlines() if line.strip().startswith(f"{key}=")]
    assert len(lines) == 1, f"{key} listed {len(lines)} times"
    return lines[0]


def test_bert_help_describes_its_keys_and_no_other_familys(capsys):
    text = _help(capsys, "pretrain", "model=bert")
    assert re.search(
        r"model\.n_heads=null +attention heads \(d_model must divide evenly\)", _key_line(text, "model.n_heads")
    )
    assert "lstm_dim" not in text
    assert "model  (TransformerConfig: A Transformer backbone" in text
    # inherited keys carry the base schema's description; nested blocks keep their group prefix
    assert _key_line(text, "model.dropout").endswith("dropout on embeddings and between layers")
    assert _key_line(text, "trainer.cpu_kernels").endswith("| torch (PyTorch's ops throughout)")
    assert re.search(r"^  \* bert +BERT \(Devlin et al\. 2019\)", text, re.M)  # the chosen option, described


def test_elmo_help_lists_elmos_keys(capsys):
    text = _help(capsys, "pretrain", "model=elmo")
    assert "LSTM cell size" in _key_line(text, "model.lstm_dim")
    assert "model.n_heads" not in text
    assert re.search(r"^  \* bilm ", text, re.M)  # ELMo's preset chose its objective


def test_pretrain_help_documents_debug_tiny(capsys):
    text = _help(capsys, "pretrain")
    assert re.search(r"^    tiny +A run of seconds for smoke tests", text, re.M)
    assert "lmtrain pretrain debug=tiny" in text
    tiny = _help(capsys, "pretrain", "debug=tiny", "model=gpt")
    assert "model.d_model=32" in tiny and "trainer.max_steps=20" in tiny and re.search(r"^  \* tiny", tiny, re.M)


def test_finetune_help_shows_the_task_and_its_data_schema(capsys):
    text = _help(capsys, "finetune", "task=classification")
    assert "task  (ClassificationTaskConfig:" in text and "data  (ClassificationDataConfig:" in text
    assert _key_line(text, "init").strip().startswith("init=null  None = latest compatible pretrain run")
    assert "data.config_name=null" in text


def test_help_with_a_bad_override_is_the_one_paragraph_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["pretrain", "model=bert", "model.lstm_dim=8", "--help"])
    assert stop.value.code == 2
    assert "lstm_dim is not a key of the transformer model family" in capsys.readouterr().err


def test_top_level_help_lists_every_shipped_preset(capsys):
    main(["--help"])
    text = capsys.readouterr().out
    for group in ("model", "objective", "task", "data", "method", "debug"):
        options = sorted(path.stem for path in (config_dir() / group).glob("*.yaml"))
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{group} "))
        assert ", ".join(options) in line, (group, line)
    assert "model=albef|bert|elmo|gpt|roberta" in text and "task=classification|generation|ner|retrieval" in text
    assert "span_mlm" not in text  # the example is a user's plug, not a shipped preset
    assert "debug=tiny" in text


def test_a_users_own_objective_is_described_when_selected():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SPAN_EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "pretrain",
            "objective=span_mlm",
            "hydra.searchpath=[file://examples/span_masking/configs]",
            "--help",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert re.search(r"^  \* span_mlm +SpanBERT-style span masking", text, re.M)  # its YAML's first comment
    assert "objective  (SpanMaskingConfig:" in text
    assert "geometric span-length distribution" in _key_line(text, "objective.span_p")
    assert "share of tokens selected for prediction" in _key_line(text, "objective.mask_prob")  # lmtrain's base


def test_descriptions_come_from_comments_inherited_through_the_mro():
    class Child(MaskingConfig):  # redefines mask_prob without a comment: the base's description stays
        mask_prob: float = 0.2
        span: int = 3  # my own key

    Child = dataclasses.dataclass(Child)
    found = field_descriptions(Child)
    assert found["span"] == "my own key"
    assert found["mask_prob"] == "share of tokens selected for prediction"
    assert found["_target_"].startswith("the objective's plug class")
    # a field whose comment stands on the lines above it
    assert field_descriptions(OptimConfig)["decay_steps"].startswith("steps over which warmup_ratio and the decay")


def _schemas():
    seen: list[type] = []
    pending = [*SCHEMAS.values(), *(cls for group in PLUG_SCHEMAS.values() for cls in group.values())]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for item in dataclasses.fields(cls):
            if item.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(item.default_factory()):
                pending.append(type(item.default_factory()))
    return seen


@pytest.mark.parametrize("schema", _schemas(), ids=lambda cls: cls.__name__)
def test_every_key_of_every_shipped_schema_has_a_description(schema):
    described = field_descriptions(schema)
    nested = {
        item.name
        for item in dataclasses.fields(schema)
        if item.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(item.default_factory())
    }
    missing = [
        item.name for item in dataclasses.fields(schema) if item.name not in described and item.name not in nested
    ]
    assert missing == [], f"{schema.__name__}: give these fields a # comment: {missing}"


def test_help_of_a_sweep_shows_the_swept_key_with_its_default(capsys):
    text = _help(capsys, "pretrain", "-m", "optim.lr=1e-4,3e-4", "model=gpt")
    assert re.search(r"^  \* gpt ", text, re.M)
    line = _key_line(text, "optim.lr")
    assert line.endswith("peak learning rate") and "1e-4" not in line
