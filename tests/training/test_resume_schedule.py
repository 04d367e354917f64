"""`lmtrain resume <run> trainer.max_steps=<more>` trains longer: the schedule continues to the new horizon."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from lmtrain.commands import pretrain
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import TINY, compose_config, write_corpus


def _overrides(root: Path, *extra: str) -> list[str]:
    return [
        *TINY,
        "model=gpt",
        "data=text",
        f"data.train_files=[{root / 'corpus.txt'}]",
        f"data.cache_dir={root / 'cache'}",
        "trainer.max_steps=4",
        "trainer.save_every=2",
        "trainer.eval_every=0",
        "trainer.log_every=1",
        "trainer.preflight=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 4-step run, its learning rate decayed to 0."""
    root = tmp_path_factory.mktemp("resume-schedule")
    write_corpus(root / "corpus.txt", n_docs=30)
    run_dir = root / "finished"
    run_dir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(run_dir)
        pretrain.run(compose_config("pretrain", _overrides(root)))
    return run_dir


def _resume(finished: Path, tmp_path: Path, monkeypatch, *extra: str) -> dict[int, float]:
    """A copy of ``finished`` continued with ``extra``; the learning rate logged at each step."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir, symlinks=True)
    monkeypatch.chdir(run_dir)
    pretrain.run(compose_config("pretrain", _overrides(finished.parent, "trainer.resume=auto", *extra)))
    return {e["step"]: e["train/lr"] for e in read_metrics(run_dir) if "train/lr" in e}


def test_more_steps_continue_the_schedule_to_the_new_horizon(finished, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        lrs = _resume(finished, tmp_path, monkeypatch, "trainer.max_steps=8")
    assert lrs[4] == 0.0  # the first run's schedule, as it ran
    after = [lrs[s] for s in range(5, 9)]
    assert after[0] > 0 and after == sorted(after, reverse=True) and after[-1] == 0.0, after
    said = [r.getMessage() for r in caplog.records if "planned steps instead of" in r.getMessage()]
    assert len(said) == 1 and "continues to the new horizon, re-planned from step 4" in said[0], said
    assert "8 planned steps instead of 4" in said[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "learning" in r.getMessage()]


def test_an_explicit_decay_steps_is_honoured_as_given(finished, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="lmtrain"):
        lrs = _resume(finished, tmp_path, monkeypatch, "trainer.max_steps=6", "optim.decay_steps=4")
    assert [lrs[s] for s in (5, 6)] == [0.0, 0.0]
    said = [r.getMessage() for r in caplog.records if "planned steps instead of" in r.getMessage()]
    assert len(said) == 1 and "optim.decay_steps=4 keeps the learning-rate horizon as given" in said[0], said
    assert "steps after 4 run at the final learning rate 0" in said[0]
