"""The shared trainer: loss falls, resume is exact, a failed save keeps the previous `last`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmtrain.commands import pretrain
from lmtrain.run_folder.layout import read_metrics
from lmtrain.training import checkpoint as ckpt
from tests.conftest import TINY, compose_config, stopping_after_step, write_corpus
from tests.conftest import loss_objective as build_objective


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=60)
    return [
        *TINY,
        "data=text",
        f"data.train_files=[{corpus}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.log_every=1",
        "model.dropout=0.1",
        *extra,
    ]


def _train_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e}


def test_bert_loss_falls_and_run_dir_contract(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    cfg = compose_config(
        "pretrain",
        _overrides(
            tmp_path,
            "trainer.max_steps=60",
            "optim.lr=5e-3",
            "model.d_model=64",
            "trainer.eval_every=30",
            "trainer.save_every=30",
            "trainer.eval_batches=null",
        ),
    )
    summary = pretrain.run(cfg)
    losses = _train_losses(run_dir)
    first, last = sum(list(losses.values())[:5]) / 5, sum(list(losses.values())[-5:]) / 5
    assert last < first - 0.5, losses
    assert summary["eval/mlm_acc"] > summary["baseline/mlm_majority_acc"]
    for name in (
        "metrics.jsonl",
        "summary.json",
        "tokenizer.json",
        "checkpoints/step-60/model.safetensors",
        "checkpoints/step-60/trainer_state.pt",
        "checkpoints/last/model.json",
    ):
        assert (run_dir / name).exists(), name
    assert (run_dir / "checkpoints" / "last").resolve().name == "step-60"
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["steps"] == 60
    (best_key,) = [k for k in saved if k.startswith("best/")]
    metric = best_key[len("best/") :]  # the objective's main metric
    evals = {e["step"]: e[f"eval/{metric}"] for e in read_metrics(run_dir) if f"eval/{metric}" in e}
    pick = max if build_objective(cfg.objective.name).higher_is_better else min
    assert sorted(evals) == [30, 60] and saved["best_step"] == pick(evals, key=evals.get)
    assert saved[best_key] == evals[saved["best_step"]]
    assert (run_dir / "checkpoints" / "best").resolve().name == f"step-{saved['best_step']}"


def test_resume_gives_exactly_the_uninterrupted_losses(tmp_path, monkeypatch):
    extra = ("trainer.max_steps=16", "trainer.save_every=8", "trainer.eval_every=0", "trainer.keep_last=0")
    straight = tmp_path / "straight"
    straight.mkdir()
    monkeypatch.chdir(straight)
    pretrain.run(compose_config("pretrain", _overrides(tmp_path, *extra)))

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    monkeypatch.chdir(resumed)
    with stopping_after_step(8), pytest.raises(SystemExit) as stopped:
        pretrain.run(compose_config("pretrain", _overrides(tmp_path, *extra)))
    assert stopped.value.code == 130
    assert (resumed / "checkpoints" / "last").resolve().name == "step-8"
    pretrain.run(compose_config("pretrain", _overrides(tmp_path, *extra, "trainer.resume=auto")))

    expected, got = _train_losses(straight), _train_losses(resumed)
    assert sorted(got) == list(range(1, 17))  # every step logged exactly once
    assert [got[s] for s in range(9, 17)] == [expected[s] for s in range(9, 17)]


def test_failed_save_leaves_previous_last_intact(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    real_save = ckpt.torch.save
    calls = {"n": 0}

    def crash_on_second_save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"partial")  # a half-written file, then the process dies
            raise OSError("disk full")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", crash_on_second_save)
    with pytest.raises(OSError, match="disk full"):
        pretrain.run(
            compose_config(
                "pretrain",
                _overrides(tmp_path, "trainer.max_steps=20", "trainer.save_every=5", "trainer.preflight=false"),
            )
        )  # its save is not counted
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "last").resolve().name == "step-5"
    assert not list(checkpoints.glob(".tmp-*")) and not (checkpoints / "step-10").exists()
    state = ckpt.load_trainer_state(checkpoints / "last")
    assert state["train"]["step"] == 5


def test_keep_last_prunes_old_checkpoints(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    pretrain.run(
        compose_config(
            "pretrain",
            _overrides(
                tmp_path, "trainer.max_steps=20", "trainer.save_every=4", "trainer.keep_last=2", "trainer.eval_every=0"
            ),
        )
    )
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*"))
    assert kept == ["step-16", "step-20"]
