"""`lmtrain evaluate`: held-out metrics of a checkpoint on a corpus, with its own tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lmtrain.commands import evaluate
from lmtrain.errors import UserError
from tests.conftest import compose_config, run_cli


def data_overrides(runs, tmp_path) -> list[str]:
    return [
        "data=text",
        f"data.train_files=[{runs['corpus']}]",
        "data.max_seq_len=32",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]


def test_cli_writes_perplexity_of_a_causal_checkpoint(runs, tmp_path):
    run_dir = tmp_path / "eval"
    out = run_cli(
        "evaluate", f"ckpt={runs['gpt']}", *data_overrides(runs, tmp_path), f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert math.isfinite(summary["eval/ppl"]) and summary["eval/ppl"] > 1 and summary["sequences"] > 0
    assert summary["objective"] == "clm" and summary["step"] == 1
    assert json.loads((run_dir / "metrics.jsonl").read_text())["eval/loss"] == summary["eval/loss"]
    assert (run_dir / "tokenizer.json").exists() and "eval/ppl" in out.stderr


def test_masked_checkpoint_on_every_sequence(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    held_out = evaluate.run(compose_config("evaluate", [f"ckpt={runs['bert']}", *data_overrides(runs, tmp_path)]))
    everything = evaluate.run(
        compose_config("evaluate", [f"ckpt={runs['bert']}", "split=all", *data_overrides(runs, tmp_path)])
    )
    assert everything["sequences"] > held_out["sequences"] > 0
    for summary in (held_out, everything):
        assert 0 <= summary["eval/mlm_acc"] <= 1 and 0 <= summary["eval/nsp_acc"] <= 1
        assert math.isfinite(summary["eval/mlm_loss"])


@pytest.mark.parametrize(
    "overrides,message",
    [
        ([], "ckpt is not set"),
        (["ckpt={gpt}", "split=test"], r"split=test: must be eval \(the held-out documents\) or all"),
        (["ckpt={nsp}"], "needs \\['mlm', 'nsp'\\]"),
        (
            ["ckpt={gpt}", "data=text", "data.train_files=[{corpus}]", "data.max_seq_len=100"],
            "longer than the model's 64 positions",
        ),
        (
            ["ckpt={gpt}"],
            "comes without its run's saved config .* choose the data to evaluate on, e.g. .*data=lee_wiki",
        ),
        (["ckpt={gpt}", "data.max_seq_len=32"], "comes without its run's saved config"),
    ],
)
def test_bad_input_is_a_user_error(runs, tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    paths = {k: str(v) for k, v in runs.items()}
    with pytest.raises(UserError, match=message):
        evaluate.run(compose_config("evaluate", [o.format(**paths) for o in overrides]))


def _with_saved_data(runs, tmp_path, data: dict) -> Path:
    """A copy of the tiny GPT run with a saved config (``.hydra/config.yaml``) whose ``data`` node is ``data``."""
    import shutil

    import yaml

    run = tmp_path / "saved"
    shutil.copytree(runs["gpt"], run, symlinks=True)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "gpt"}, "data": data}))
    return run


@pytest.mark.parametrize(
    "data",
    [
        {
            "name": "lee_wiki",
            "source": "bundled",
            "bundled": ["lee_background.cor"],
            "max_seq_len": 64,
            "eval_fraction": 0.08,
            "split_seed": 7,
        },
        {"name": "text", "source": "files", "train_files": ["corpus.txt"], "max_seq_len": 48, "eval_fraction": 0.2},
        {"name": "hf", "source": "hf", "path": "some/dataset", "eval_split": "validation", "max_seq_len": 40},
    ],
)
def test_by_default_the_run_s_own_data_is_evaluated(runs, tmp_path, data):
    from lmtrain.models.loading import locate_model

    run = _with_saved_data(runs, tmp_path, data)
    cfg = evaluate.config_objects(compose_config("evaluate", [f"ckpt={run}"]), "evaluate")
    chosen, origin = evaluate.data_to_evaluate(cfg, locate_model(run))
    assert origin == "run" and {k: getattr(chosen, k) for k in data} == data
    cfg = evaluate.config_objects(compose_config("evaluate", [f"ckpt={run}", "data.max_seq_len=16"]), "evaluate")
    chosen, origin = evaluate.data_to_evaluate(cfg, locate_model(run))
    assert origin == "run" and chosen.max_seq_len == 16 and chosen.source == data["source"]


def test_the_cli_evaluates_the_run_s_held_out_split(runs, tmp_path):
    run = _with_saved_data(
        runs,
        tmp_path,
        {
            "name": "text",
            "source": "files",
            "train_files": [str(runs["corpus"])],
            "max_seq_len": 32,
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    out = run_cli("evaluate", f"ckpt={run}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["data_from"] == "run" and summary["data"] == "text" and summary["sequences"] > 0
    assert summary["config"]["data"]["max_seq_len"] == 32 and summary["config"]["data"]["source"] == "files"
    said = out.stdout + out.stderr
    assert "data: the run's own, text" in said and "WARNING" not in said


def test_other_data_is_evaluated_when_asked_and_said(runs, tmp_path):
    run = _with_saved_data(runs, tmp_path, {"name": "lee_wiki", "source": "bundled", "max_seq_len": 64})
    out = run_cli(
        "evaluate", f"ckpt={run}", *data_overrides(runs, tmp_path), f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["data_from"] == "given" and summary["config"]["data"]["max_seq_len"] == 32
    said = out.stdout + out.stderr
    assert "evaluating on the data given" in said and "pass data.name" not in said


def test_a_misspelt_data_key_is_refused_before_any_work(tmp_path):
    out = run_cli("evaluate", "ckpt=x", "data.max_seq_lenn=32", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 2 and "Did you mean data.max_seq_len?" in " ".join(out.stderr.split())
    assert not (tmp_path / "eval").exists()
