"""The preflight: what would fail hours later fails in seconds, and training is left as it was."""

from __future__ import annotations

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
        ([], 1),  # 6 steps: the time estimate only informs, one timed pass
        (["trainer.max_steps=101"], 2),  # a longer plan: the allocator warm-up pass is not counted
        (["trainer.max_time=1h"], 2),  # a budget the estimate is checked against
    ],
)
def test_a_short_plan_times_one_forward_and_backward(tmp_path, monkeypatch, extra, passes):
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
