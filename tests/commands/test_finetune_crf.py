"""`task.crf=true` and `task.encoder` on a Transformer backbone: train, predict, refuse what does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmtrain.commands import export, finetune, predict
from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from lmtrain.models.loading import load_checkpoint
from tests.commands.test_finetune import ner_files, run_command
from tests.tasks.fixtures import FAST, TINY_SCRATCH, write_task_files


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_task_files(tmp_path_factory.mktemp("crf-data"))


def test_a_transformer_tagger_with_a_crf_trains_predicts_valid_bio_and_is_not_exported(data, tmp_path):
    run = tmp_path / "run"
    summary = run_command(
        finetune, "finetune", run, ["task=ner", *TINY_SCRATCH, *FAST, "task.crf=true", *ner_files(data)]
    )
    assert summary["best/f1"] > 0.5, summary
    model, _, meta = load_checkpoint(run / "checkpoints" / ckpt.BEST)
    assert meta["task_heads"]["tagger"]["crf"] and meta["task_heads"]["tagger"]["encoder"] == "linear"
    labels = summary["labels"]
    allowed = model.heads["tagger"].crf.allowed  # BIO constraints travel with the checkpoint
    o, b_org, i_org = (labels.index(t) for t in ("O", "B-ORG", "I-ORG"))
    assert not allowed[o, i_org] and allowed[b_org, i_org]
    text = tmp_path / "in.txt"
    text.write_text("Alice visited Paris .\nthe Globex Corp office in Tokyo hired Bob .\n")
    records = run_command(predict, "predict", tmp_path / "p", [f"ckpt={run}", f"input={text}"])
    assert [len(r["tags"]) for r in records] == [4, 9]
    for record in records:
        for before, tag in zip(["O", *record["tags"]], record["tags"]):
            assert not tag.startswith("I-") or before[2:] == tag[2:], record["tags"]
    with pytest.raises(UserError, match="task biLSTM or a CRF, which Hugging Face"):
        run_command(export, "export", tmp_path / "e", [f"ckpt={run}", "format=hf", f"out={tmp_path / 'hf'}"])


@pytest.mark.parametrize("key", ["crf=true", "encoder=bilstm", "lstm_dim=64"])
def test_a_tagger_key_is_not_a_key_of_classification(key):
    from lmtrain.cli.main import validate_overrides

    with pytest.raises(UserError, match=f"{key.split('=')[0]} is not a key of the classification task"):
        validate_overrides("finetune", ["task=classification", f"task.{key}"])


@pytest.mark.parametrize(
    "old,new",
    [("finetune.task_encoder=bilstm", "task.encoder=bilstm"), ("finetune.task_lstm_dim=64", "task.lstm_dim=64")],
)
def test_the_moved_tagger_keys_name_their_new_place(old, new):
    from lmtrain.cli.main import validate_overrides

    with pytest.raises(UserError) as error:
        validate_overrides("finetune", ["task=ner", old])
    assert f"{old} is read no more: the key moved to {new.split('=')[0]}" in str(error.value)
    assert f"Write {new} instead" in str(error.value)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["task=ner", "task.crf=true", "finetune.class_weights=auto"], "finetune.class_weights=auto weights each word"),
        (["task=ner", "task.encoder=gru"], "encoder=gru: must be one of linear, bilstm"),
    ],
)
def test_tagger_options_that_do_not_fit_are_refused(overrides, expected, data, tmp_path):
    files = (
        ner_files(data)
        if "task=ner" in overrides
        else [f"data.train_file={data / 'train.tsv'}", f"data.eval_file={data / 'dev.tsv'}"]
    )
    with pytest.raises(UserError) as error:
        run_command(finetune, "finetune", tmp_path, [*overrides, *TINY_SCRATCH, *FAST, *files])
    assert expected in str(error.value)


def test_a_tagger_run_saved_before_the_keys_moved_resumes(data, tmp_path):
    from tests.conftest import run_cli

    run = tmp_path / "run"
    args = ["task=ner", *TINY_SCRATCH, *FAST, "trainer.max_steps=2", "trainer.eval_every=0", *ner_files(data)]
    assert run_cli("finetune", *args, f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
    saved = run / ".hydra" / "config.yaml"  # as written before: no task.encoder / task.lstm_dim
    text = saved.read_text()
    assert "  encoder: null\n  lstm_dim: 128\n" in text and "  task_lstm_dim: 128\n" in text
    saved.write_text(text.replace("  encoder: null\n  lstm_dim: 128\n", ""))
    result = run_cli("resume", str(run), "trainer.max_steps=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["steps"] == 4


def test_a_tagger_run_saved_with_the_old_key_resumes_with_it(data, tmp_path):
    """A run whose saved overrides hold ``finetune.task_encoder=bilstm`` resumes as ``task.encoder=bilstm``."""
    from tests.conftest import run_cli

    run = tmp_path / "run"
    args = ["task=ner", *TINY_SCRATCH, *FAST, "trainer.max_steps=2", "trainer.eval_every=0", *ner_files(data)]
    assert (
        run_cli(
            "finetune", *args, "task.encoder=bilstm", "task.lstm_dim=16", f"hydra.run.dir={run}", cwd=tmp_path
        ).returncode
        == 0
    )
    hydra = run / ".hydra"  # as written before the move: the old keys in the overrides and the config
    overrides = (hydra / "overrides.yaml").read_text()
    (hydra / "overrides.yaml").write_text(
        overrides.replace("task.encoder=bilstm", "finetune.task_encoder=bilstm").replace(
            "task.lstm_dim=16", "finetune.task_lstm_dim=16"
        )
    )
    text = (hydra / "config.yaml").read_text()
    assert "  encoder: bilstm\n  lstm_dim: 16\n" in text and "  task_encoder: null\n  task_lstm_dim: 128\n" in text
    (hydra / "config.yaml").write_text(
        text.replace("  encoder: bilstm\n  lstm_dim: 16\n", "").replace(
            "  task_encoder: null\n  task_lstm_dim: 128\n", "  task_encoder: bilstm\n  task_lstm_dim: 16\n"
        )
    )
    result = run_cli("resume", str(run), "trainer.max_steps=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finetune.task_encoder=bilstm is written task.encoder=bilstm now" in result.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == 4
