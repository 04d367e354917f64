"""GPT (causal LM) and RoBERTa (dynamic-masking MLM) train on the shared loop with the loss falling; the
pretraining presets train a fixed number of steps, whatever the machine."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lmtrain.cli.main import config_dir
from lmtrain.commands import pretrain
from lmtrain.data.datasets import PretrainingDataset
from lmtrain.data.masking import MaskingSpec, TokenMasking
from lmtrain.data.store import ExampleStore, write_store
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import TINY, compose_config, write_corpus


def _run(tmp_path: Path, monkeypatch, model: str, *extra: str) -> tuple[dict, list[float]]:
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=60)
    run_dir = tmp_path / model
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    cfg = compose_config(
        "pretrain",
        [
            f"model={model}",
            *TINY,
            "data=text",
            f"data.train_files=[{corpus}]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.log_every=1",
            "trainer.max_steps=40",
            "optim.lr=5e-3",
            "model.d_model=64",
            *extra,
        ],
    )
    summary = pretrain.run(cfg)
    losses = [e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e]
    return summary, losses


def test_gpt_loss_falls_and_beats_unigram(tmp_path, monkeypatch):
    summary, losses = _run(tmp_path, monkeypatch, "gpt")
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert summary["eval/ppl"] < summary["baseline/unigram_ppl"]


def test_roberta_loss_falls(tmp_path, monkeypatch):
    summary, losses = _run(tmp_path, monkeypatch, "roberta", "objective.whole_word=true")
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert summary["objective"] == "mlm"


def test_dynamic_masks_change_per_epoch_and_repeat_per_seed(tmp_path):
    rng = np.random.default_rng(0)
    ids = [np.concatenate([[0], rng.integers(5, 200, 30), [2]]) for _ in range(4)]
    write_store(tmp_path / "store", {"input_ids": ids, "word_ids": [np.arange(32) for _ in ids]}, {}, {})
    spec = MaskingSpec(mask_id=4, vocab_size=200, special_ids=(0, 1, 2, 3, 4))
    dataset = PretrainingDataset(ExampleStore(tmp_path / "store"), TokenMasking(spec), seed=3)
    dataset.set_epoch(0)
    epoch0 = [dataset[i]["labels"] for i in range(4)]
    dataset.set_epoch(1)
    epoch1 = [dataset[i]["labels"] for i in range(4)]
    again = PretrainingDataset(ExampleStore(tmp_path / "store"), TokenMasking(spec), seed=3)
    again.set_epoch(0)
    assert any((a != b).any() for a, b in zip(epoch0, epoch1))
    assert all((a == again[i]["labels"]).all() for i, a in enumerate(epoch0))


PRESETS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", PRESETS)
def test_no_pretraining_preset_caps_time(model):
    """The same command trains the same steps on every machine: a time budget is the user's choice."""
    cfg = compose_config("pretrain", [f"model={model}"])
    assert cfg.trainer.max_time is None
    assert cfg.trainer.max_steps >= 100


@pytest.mark.parametrize("model", PRESETS)
def test_each_preset_states_how_long_its_default_run_takes(model):
    text = (config_dir() / "model" / f"{model}.yaml").read_text()
    prose = " ".join(line.strip().lstrip("#").strip() for line in text.splitlines())
    assert re.search(r"about [\d.]+(-[\d.]+)? minutes", prose), f"model/{model}.yaml must state its run's time"
    assert not re.search(r"^\s*max_time:", text, re.MULTILINE)
