"""ELMo's biLM trains on the shared loop: both directions' losses fall and beat the unigram baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmtrain.commands import evaluate, pretrain
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability
from lmtrain.models.loading import load_checkpoint
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import TINY, compose_config, run_cli, write_corpus

# on top of debug=tiny (d_model 32, 2 layers, vocabulary 1000): a biLM of seconds
ELMO_TINY = [
    "model.lstm_dim=64",
    "model.char_filter_counts=[16,16,32,32,32]",
    "model.max_chars=12",
    "trainer.max_steps=40",
    "trainer.log_every=1",
    "trainer.eval_every=0",
    "optim.lr=5e-3",
]


def _overrides(tmp_path: Path) -> list[str]:
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=60)
    return [*TINY, "data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}", *ELMO_TINY]


def test_bilm_both_directions_learn_and_the_checkpoint_reloads(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    summary = pretrain.run(compose_config("pretrain", ["model=elmo", *_overrides(tmp_path)]))
    events = [e for e in read_metrics(run_dir) if "train/fwd_loss" in e]
    for direction in ("fwd", "bwd"):
        losses = [e[f"train/{direction}_loss"] for e in events]
        assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, direction
        assert summary[f"eval/{direction}_ppl"] < summary["baseline/unigram_ppl"]
    assert summary["objective"] == "bilm"

    model, tokenizer, meta = load_checkpoint(run_dir, needs=Capability.BIDIRECTIONAL_LM)
    assert meta["family"] == "elmo" and meta["spec"]["token_encoder"] == "char_cnn"
    ids = torch.tensor([tokenizer.encode_batch(["The farmer visited the old barn in the morning."])[0]])
    states = model.backbone(ids)
    assert states.forward[-1].shape == (1, ids.shape[1], meta["spec"]["d_model"])
    with pytest.raises(UserError, match="holds a model of the elmo family .elmo., which lacks a causal LM head"):
        load_checkpoint(run_dir, needs=Capability.CAUSAL_LM)  # commands that need another capability refuse it clearly

    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    monkeypatch.chdir(eval_dir)
    corpus = tmp_path / "corpus.txt"
    evaluated = evaluate.run(
        compose_config(
            "evaluate",
            [
                f"ckpt={run_dir}",
                "data=text",
                f"data.train_files=[{corpus}]",
                "data.max_seq_len=64",
                f"data.cache_dir={tmp_path / 'cache'}",
            ],
        )
    )
    assert evaluated["objective"] == "bilm"
    assert evaluated["eval/fwd_ppl"] < summary["baseline/unigram_ppl"]
    assert evaluated["eval/bwd_ppl"] < summary["baseline/unigram_ppl"]


def test_bilm_needs_the_elmo_model_and_elmo_keys_need_it_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config("pretrain", ["model=gpt", "objective=bilm", *TINY])
    with pytest.raises(
        UserError,
        match=r"objective=bilm needs forward and backward language models \(a biLM\), "
        r"which the chosen model model=gpt \(transformer family\) lacks",
    ):
        pretrain.run(cfg)
    with pytest.raises(Exception, match="Could not override 'model.lstm_dim'"):
        compose_config("pretrain", ["model=gpt", *_overrides(tmp_path)])


def test_cli_pretrain_elmo_beats_unigram_in_both_directions(tmp_path):
    run_dir = tmp_path / "cli_run"
    result = run_cli(
        "pretrain",
        "model=elmo",
        "model.token_encoder=embedding",
        *_overrides(tmp_path),
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("eval/fwd_ppl", "eval/bwd_ppl", "eval/ppl"):
        assert summary[key] < summary["baseline/unigram_ppl"], key
    assert json.loads((run_dir / "checkpoints" / "last" / "model.json").read_text())["family"] == "elmo"
