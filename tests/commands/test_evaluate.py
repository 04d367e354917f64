"""`lmtrain evaluate`: held-out metrics of a checkpoint on a corpus, with its own tokenizer."""

from __future__ import annotations

import json
import math

import pytest

from lmtrain.commands import evaluate
from lmtrain.errors import UserError
from tests.conftest import compose_config, run_cli


def data_overrides(runs, tmp_path) -> list[str]:
    return ["data=text", f"data.train_files=[{runs['corpus']}]", "data.max_seq_len=32",
            f"data.cache_dir={tmp_path / 'cache'}"]


def test_cli_writes_perplexity_of_a_causal_checkpoint(runs, tmp_path):
    run_dir = tmp_path / "eval"
    out = run_cli("evaluate", f"ckpt={runs['gpt']}", *data_overrides(runs, tmp_path), f"hydra.run.dir={run_dir}",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert math.isfinite(summary["eval/ppl"]) and summary["eval/ppl"] > 1 and summary["sequences"] > 0
    assert summary["objective"] == "clm" and summary["step"] == 1
    assert json.loads((run_dir / "metrics.jsonl").read_text())["eval/loss"] == summary["eval/loss"]
    assert (run_dir / "tokenizer.json").exists() and "eval/ppl" in out.stderr


def test_masked_checkpoint_on_every_sequence(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    held_out = evaluate.run(compose_config("evaluate", [f"ckpt={runs['bert']}", *data_overrides(runs, tmp_path)]))
    everything = evaluate.run(compose_config("evaluate", [f"ckpt={runs['bert']}", "split=all",
                                                          *data_overrides(runs, tmp_path)]))
    assert everything["sequences"] > held_out["sequences"] > 0
    for summary in (held_out, everything):
        assert 0 <= summary["eval/mlm_acc"] <= 1 and 0 <= summary["eval/nsp_acc"] <= 1
        assert math.isfinite(summary["eval/mlm_loss"])


@pytest.mark.parametrize("overrides,message", [
    ([], "ckpt is not set"),
    (["ckpt={gpt}", "split=test"], r"split=test: must be eval \(the held-out documents\) or all"),
    (["ckpt={nsp}"], "needs \\['mlm', 'nsp'\\]"),
    (["ckpt={gpt}", "data.max_seq_len=100"], "longer than the model's 64 positions"),
])
def test_bad_input_is_a_user_error(runs, tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    paths = {k: str(v) for k, v in runs.items()}
    with pytest.raises(UserError, match=message):
        evaluate.run(compose_config("evaluate", [o.format(**paths) for o in overrides]))
