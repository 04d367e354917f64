"""The preflight: what would fail hours later fails in seconds, and training is left as it was."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from lmtrain.commands import pretrain
from lmtrain.errors import UserError
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import TINY, compose_config, write_corpus


def _cfg(tmp_path: Path, *extra: str):
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=30)
    return compose_config(
        "pretrain",
        [
            *TINY,
            "data=text",
            f"data.train_files=[{corpus}]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.log_every=1",
            "trainer.max_steps=6",
            *extra,
        ],
    )


def _losses(run_dir: Path) -> list[float]:
    return [e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e]


def test_a_run_with_a_preflight_has_the_losses_of_one_without(tmp_path, monkeypatch):
    losses = {}
    for flag in ("true", "false"):
        run_dir = tmp_path / flag
        run_dir.mkdir()
        monkeypatch.chdir(run_dir)
        pretrain.run(_cfg(tmp_path, f"trainer.preflight={flag}", "model.dropout=0.1"))
        losses[flag] = _losses(run_dir)
        assert not list((run_dir / "checkpoints").glob(".preflight-*"))
    assert losses["true"] == losses["false"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["trainer.keep_last=1000000000"], "keeps 1000000001 checkpoints"),
        (["trainer.monitor=bleu"], "trainer.monitor=bleu is not an evaluation metric"),
    ],
)
def test_what_would_fail_later_fails_before_the_first_step(tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=message):
        pretrain.run(_cfg(tmp_path, *extra))
    assert not (tmp_path / "metrics.jsonl").exists()  # not one step was taken


class _Preflown(Exception):
    """Stops a run once its preflight is done."""


@pytest.mark.parametrize(
    "extra,passes",
    [
        ([], 0),  # 6 steps: the first step is the measurement (test_a_short_plan_measures_its_first_step)
        (["trainer.compile=true"], 1),  # the first step would compile: one timed pass before it
        (["trainer.max_steps=101"], 2),  # a longer plan: the allocator warm-up pass is not counted
        (["trainer.max_time=1h"], 2),  # a budget the estimate is checked against
    ],
)
def test_the_forward_and_backward_passes_timed_before_the_first_step(tmp_path, monkeypatch, extra, passes):
    from lmtrain.training import preflight, session

    backward_calls = []
    real_backward = torch.Tensor.backward

    def counted(*args, **kwargs):
        backward_calls.append(1)
        return real_backward(*args, **kwargs)

    def preflight_only(trainer):
        monkeypatch.setattr(torch.Tensor, "backward", counted)
        preflight.run_preflight(trainer)
        monkeypatch.setattr(torch.Tensor, "backward", real_backward)
        raise _Preflown

    monkeypatch.setattr(session, "run_preflight", preflight_only)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(_Preflown):
        pretrain.run(_cfg(tmp_path, *extra))
    assert len(backward_calls) == passes


def _counting_backward(monkeypatch) -> list[int]:
    calls: list[int] = []
    real_backward = torch.Tensor.backward

    def counted(*args, **kwargs):
        calls.append(1)
        return real_backward(*args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", counted)
    return calls


def _preflight_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(("preflight: ", "step "))]


def test_a_short_plan_measures_its_first_step_instead_of_a_pass_of_its_own(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    backward_calls = _counting_backward(monkeypatch)
    with caplog.at_level("INFO"):
        pretrain.run(_cfg(tmp_path, "trainer.progress=false"))
    assert len(backward_calls) == 6  # the 6 steps' and no other
    lines = _preflight_lines(caplog)
    assert lines[0].startswith("preflight: evaluation batch ") and "measured on the first step" in lines[0]
    assert lines[1].startswith("preflight: first step (") and "as wide as the longest batch" in lines[1]
    assert lines[2].startswith("preflight: estimated training time ")
    assert lines[3].startswith("step 1/6")


def test_a_first_step_narrower_than_the_longest_batch_is_followed_by_the_longest_batchs_pass(
    tmp_path, monkeypatch, caplog
):
    from lmtrain.training import preflight
    from lmtrain.training.trainer import Trainer

    real_step, real_pass = Trainer._train_step, preflight._longest_pass

    def narrow_step(self, sums):
        real_step(self, sums)
        self.window_shapes = [(1, 1)]  # as if its batch had been narrower than the longest

    def slow_pass(*args, **kwargs):
        time.sleep(3.0)  # longer than the six tiny steps take
        return real_pass(*args, **kwargs)

    monkeypatch.setattr(preflight, "_longest_pass", slow_pass)

    losses = {}
    for flag in ("true", "false"):
        run_dir = tmp_path / flag
        run_dir.mkdir()
        monkeypatch.chdir(run_dir)
        monkeypatch.setattr(Trainer, "_train_step", narrow_step)
        caplog.clear()
        with caplog.at_level("INFO"):
            pretrain.run(_cfg(tmp_path, f"trainer.preflight={flag}", "model.dropout=0.1", "trainer.progress=false"))
        losses[flag] = _losses(run_dir)
    assert losses["true"] == losses["false"]  # the pass after the first step leaves training as it was
    summary = json.loads((tmp_path / "true" / "summary.json").read_text())
    assert summary["train_seconds"] < 3.0  # the memory check's pass is not counted as training time
    monkeypatch.chdir(tmp_path / "true")
    backward_calls = _counting_backward(monkeypatch)
    caplog.clear()
    with caplog.at_level("INFO"):
        pretrain.run(_cfg(tmp_path, "trainer.progress=false", "hydra.run.dir=again"))
    assert len(backward_calls) == 6 + 1
    lines = _preflight_lines(caplog)
    assert lines[1].startswith("preflight: longest batch (") and "forward + backward" in lines[1]
    assert lines[3].startswith("step 1/6")


def test_a_first_step_that_runs_out_of_memory_says_what_to_lower(tmp_path, monkeypatch):
    from lmtrain.training.trainer import Trainer

    def out_of_memory(self, sums):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes.")

    monkeypatch.setattr(Trainer, "_train_step", out_of_memory)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"the longest training batch \(\d+ x \d+\) does not fit in memory on cpu"):
        pretrain.run(_cfg(tmp_path))


def test_an_evaluation_batch_that_pays_once_only_costs_is_timed_again(tmp_path, monkeypatch, caplog):
    from lmtrain.training import preflight

    calls: list[int] = []
    real = preflight.evaluate_objective

    def first_call_slow(*args, **kwargs):  # as a metric library imported by the first evaluation
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(preflight, "evaluate_objective", first_call_slow)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO"):
        pretrain.run(_cfg(tmp_path, "trainer.progress=false", "trainer.max_steps=2"))
    line = next(line for line in _preflight_lines(caplog) if "evaluation batch" in line)
    seconds = float(line.split("evaluation batch ")[1].split(" s")[0])
    assert len(calls) == 2 and seconds < 1.0  # the second, once-only cost left out of the estimate
