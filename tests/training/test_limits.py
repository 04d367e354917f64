"""max_steps, max_epochs and max_time: whichever comes first ends training, and the schedule is planned for it."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch

from lmtrain.commands import pretrain
from lmtrain.config import OptimConfig
from lmtrain.config.durations import parse_duration
from lmtrain.errors import UserError
from lmtrain.run_folder.layout import read_metrics
from lmtrain.training.distributed import Distributed
from lmtrain.training.limits import Limits
from lmtrain.training.optim import build_scheduler
from lmtrain.training.step_plan import StepPlan
from lmtrain.training.train_state import TrainState
from tests.conftest import TINY, compose_config, write_corpus


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("01:30:00", 5400),
        ("1:30", 90),
        ("0.5h", 1800),
    ],
)
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
    cfg = compose_config(
        "pretrain",
        [
            *TINY,
            "data=text",
            f"data.train_files=[{corpus}]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.log_every=1",
            "trainer.save_every=0",
            "trainer.eval_every=0",
            "model=gpt",
            *extra,
        ],
    )
    return pretrain.run(cfg), run_dir


def test_max_epochs_stops_and_plans_the_decay_for_it(tmp_path, monkeypatch):
    summary, run_dir = _run(
        tmp_path, monkeypatch, "trainer.max_steps=100000", "trainer.max_epochs=2", "trainer.eval_every_epochs=1"
    )
    events = read_metrics(run_dir)
    steps = summary["steps"]
    assert summary["stopped_by"] == "max_epochs" and summary["epochs"] == 2.0 and steps < 100
    lrs = [e["train/lr"] for e in events if "train/lr" in e]
    assert lrs[-1] == 0.0 and max(lrs) > 0  # decayed to the floor exactly at the end of the 2 epochs
    evals = [e["step"] for e in events if "eval/loss" in e]
    assert evals == [steps // 2, steps]  # after epoch 1, and at the end


def test_max_time_stops_and_still_evaluates_and_saves(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary, run_dir = _run(
            tmp_path, monkeypatch, "trainer.max_steps=100000", "trainer.max_time=6s", "optim.lr=1e-3"
        )
    assert "longer than trainer.max_time=6s: training stops at the budget" in caplog.text  # said up front
    assert summary["stopped_by"] == "max_time" and 0 < summary["steps"] < 100000
    assert "eval/loss" in summary and (run_dir / "checkpoints" / "last" / "trainer_state.pt").exists()
    lrs = [e["train/lr"] for e in read_metrics(run_dir) if "train/lr" in e]
    # The decay was planned for the budget: the rate has passed its peak and falls (over 100000 steps it would
    # still be warming up, rising at every step). How far it fell depends on the machine's load after the plan.
    assert lrs[-1] < max(lrs) and lrs[-1] < lrs[-2], lrs[-5:]


def test_a_time_budget_run_states_its_plan_first(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        _run(
            tmp_path,
            monkeypatch,
            "trainer.max_steps=100000",
            "trainer.max_time=4s",
            "trainer.eval_every=50",
            "trainer.save_every=100",
        )
    lines = [r.getMessage() for r in caplog.records]
    first_step = next(i for i, line in enumerate(lines) if line.startswith("step "))
    plan = [line for line in lines[:first_step] if line.startswith("plan: ")]
    assert plan, lines[:first_step]
    text = " ".join(plan)
    assert "100,000 steps (trainer.max_steps) x 8 sequences x 64 tokens" in text and "51,200,000 tokens" in text
    assert "evaluation every 50 steps" in text and "checkpoint every 100 steps" in text
    assert "trainer.max_time=4s" in text


def test_the_total_changes_once_with_its_reason(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary, _ = _run(tmp_path, monkeypatch, "trainer.max_steps=100000", "trainer.max_time=4s")
    lines = [r.getMessage() for r in caplog.records]
    totals = [int(m.group(1)) for m in map(re.compile(r"step \d+/(\d+) ").match, lines) if m]
    assert totals[0] == 100000 and len(set(totals)) <= 2, sorted(set(totals))  # no total jumping at every estimate
    reasons = [line for line in lines if line.startswith("trainer.max_time=4s: ")]
    assert len(reasons) == 1 and "steps fit" in reasons[0], reasons
    assert f"ends at step {totals[-1]:,}" in reasons[0]
    assert summary["steps"] <= totals[-1]


def test_the_budget_is_planned_once_from_the_pace_after_the_first_step():
    limits = Limits(max_steps=1000, max_epochs=None, max_time=100.0, batches_per_epoch=30, grad_accum=1)
    # first step 10 s (warm-up), then 1 s a step: 10 more steps end at 20 s, 80 s left fit 80 steps
    assert limits.steps_in_budget(step=11, elapsed=20.0, pace=1.0) == 91
    limits.budget_steps = 91
    assert limits.planned_steps() == 91 and limits.planned_steps(step=50, elapsed=30.0) == 91  # fixed now
    assert limits.stop_reason(91, 0, 80.0) == "max_time" and limits.stop_reason(90, 0, 100.0) == "max_time"
    assert limits.stop_reason(90, 0, 80.0) is None


def test_eval_at_start_records_the_starting_weights(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        summary, run_dir = _run(
            tmp_path, monkeypatch, "trainer.max_steps=30", "trainer.eval_at_start=true", "optim.lr=3e-3"
        )
    first = read_metrics(run_dir)[0]
    assert first["step"] == 0 and "eval/loss" in first
    assert summary["start/loss"] == first["eval/loss"] and summary["eval/loss"] < summary["start/loss"]
    # plain log lines say where the run is, and the preflight block comes first
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("step 10/30"))
    assert "(33%)" in line and "epoch" in line and "elapsed 0:00:" in line and "ETA 0:00:" in line
    assert any(r.getMessage().startswith("preflight: first step (8 x 64") for r in caplog.records)
    assert json.loads((run_dir / "summary.json").read_text())["stopped_by"] == "max_steps"


class _Total:
    """The progress bar's total, with every change recorded."""

    def __init__(self, total: int):
        self.total, self.changes = total, []

    def set_total(self, total: int) -> None:
        self.total = total
        self.changes.append(total)


def _plan(max_time: float = 100.0) -> tuple[StepPlan, TrainState]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    limits = Limits(max_steps=1000, max_epochs=None, max_time=max_time, batches_per_epoch=30, grad_accum=1)
    return StepPlan(
        limits, build_scheduler(optimizer, OptimConfig(lr=1.0), 1000), Distributed(), f"{max_time:g}s"
    ), TrainState()


def _run_steps(plan: StepPlan, state: TrainState, progress: _Total, times: list[float]) -> None:
    for elapsed in times:
        state.step += 1
        plan.after_step(state, elapsed, progress)


def test_the_budget_plan_moves_the_total_and_the_horizon_once(caplog):
    plan, state = _plan()
    progress = _Total(1000)
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        plan.start(state, progress)
        _run_steps(plan, state, progress, [10.0 + s for s in range(40)])  # a slow first step, then 1 s each
    assert progress.changes == [91] and state.planned_steps == 91 and plan.scheduler.plan.horizon == 91
    assert state.budget_steps == 91 and state.budget_seconds == 100.0
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("trainer.max_time=100s: at 1 s a step (steps 2-11), 80 more steps fit")


def test_a_resumed_run_keeps_its_budget_plan_or_says_why_it_plans_anew(caplog):
    plan, state = _plan()
    state.step, state.planned_steps, state.budget_steps, state.budget_seconds = 50, 91, 91, 100.0
    progress = _Total(1000)
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        plan.start(state, progress)
        _run_steps(plan, state, progress, [60.0 + s for s in range(20)])
    assert progress.changes == [91] and not caplog.records  # the same budget: the same plan, nothing to say

    plan, state = _plan(max_time=200.0)
    state.step, state.planned_steps, state.budget_steps, state.budget_seconds = 50, 91, 91, 100.0
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        plan.start(state, _Total(1000))
    assert "resumed at step 50 under trainer.max_time=200s, not the budget its 91 planned steps" in caplog.text
