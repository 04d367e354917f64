"""max_steps, max_epochs and max_time: whichever comes first ends training, and the schedule is planned for it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lmtrain.commands import pretrain
from lmtrain.durations import parse_duration
from lmtrain.errors import UserError
from lmtrain.run_dir import read_metrics
from lmtrain.training.limits import Limits
from tests.conftest import TINY, compose_config, write_corpus


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800),
                                          ("01:30:00", 5400), ("1:30", 90), ("0.5h", 1800)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5x", "-5m", "0", ""])
def test_a_bad_duration_names_the_key(text):
    with pytest.raises(UserError, match="trainer.max_time=.* is not a positive duration"):
        parse_duration(text)


def test_the_plan_takes_the_nearest_limit():
    limits = Limits(max_steps=1000, max_epochs=2, max_time=100.0, batches_per_epoch=30, grad_accum=4)
    assert limits.planned_steps() == 15  # 2 epochs of 30 micro-batches, 4 per step
    assert limits.planned_steps(step=10, elapsed=50.0) == 15  # the pace allows 20: the epochs end first
    assert limits.planned_steps(step=10, elapsed=80.0) == 12  # 5 s a step, 20 s left: 4 more
    assert limits.stop_reason(15, 1, 10.0) is None and limits.stop_reason(5, 2, 10.0) == "max_epochs"
    assert limits.stop_reason(5, 0, 100.0) == "max_time" and limits.stop_reason(1000, 0, 0.0) == "max_steps"


def _run(tmp_path: Path, monkeypatch, *extra: str) -> tuple[dict, Path]:
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=30)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    cfg = compose_config("pretrain", [*TINY, "data=text", f"data.train_files=[{corpus}]",
                                      f"data.cache_dir={tmp_path / 'cache'}", "trainer.log_every=1",
                                      "trainer.save_every=0", "trainer.eval_every=0", "model=gpt", *extra])
    return pretrain.run(cfg), run_dir


def test_max_epochs_stops_and_plans_the_decay_for_it(tmp_path, monkeypatch):
    summary, run_dir = _run(tmp_path, monkeypatch, "trainer.max_steps=100000", "trainer.max_epochs=2",
                            "trainer.eval_every_epochs=1")
    events = read_metrics(run_dir)
    steps = summary["steps"]
    assert summary["stopped_by"] == "max_epochs" and summary["epochs"] == 2.0 and steps < 100
    lrs = [e["train/lr"] for e in events if "train/lr" in e]
    assert lrs[-1] == 0.0 and max(lrs) > 0  # decayed to the floor exactly at the end of the 2 epochs
    evals = [e["step"] for e in events if "eval/loss" in e]
    assert evals == [steps // 2, steps]  # after epoch 1, and at the end


def test_max_time_stops_and_still_evaluates_and_saves(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="lmtrain"):
        summary, run_dir = _run(tmp_path, monkeypatch, "trainer.max_steps=100000", "trainer.max_time=10s",
                                "optim.lr=1e-3")
    assert "longer than trainer.max_time=10s: training stops at the budget" in caplog.text  # said up front
    assert summary["stopped_by"] == "max_time" and 0 < summary["steps"] < 100000
    assert "eval/loss" in summary and (run_dir / "checkpoints" / "last" / "trainer_state.pt").exists()
    lrs = [e["train/lr"] for e in read_metrics(run_dir) if "train/lr" in e]
    assert lrs[-1] < 0.5e-3  # the decay was planned for the budget; over 100000 steps it would still be warming up


def test_eval_at_start_records_the_starting_weights(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary, run_dir = _run(tmp_path, monkeypatch, "trainer.max_steps=30", "trainer.eval_at_start=true",
                                "optim.lr=3e-3")
    first = read_metrics(run_dir)[0]
    assert first["step"] == 0 and "eval/loss" in first
    assert summary["start/loss"] == first["eval/loss"] and summary["eval/loss"] < summary["start/loss"]
    # plain log lines say where the run is, and the preflight block comes first
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("step 10/30"))
    assert "(33%)" in line and "epoch" in line and "elapsed 0:00:" in line and "ETA 0:00:" in line
    assert any(r.getMessage().startswith("preflight: longest batch (8 x 64)") for r in caplog.records)
    assert json.loads((run_dir / "summary.json").read_text())["stopped_by"] == "max_steps"
