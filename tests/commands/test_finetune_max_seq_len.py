"""``data.max_seq_len`` over the backbone's positions: a data preset's value is cut to them (the log says so), a
value typed on the command line is refused, never cut."""

from __future__ import annotations

import logging

from lmtrain.commands import finetune
from tests.conftest import compose_config, run_cli
from tests.tasks.fixtures import ner_files_and_backbone

STEPS = ["trainer.progress=false", "trainer.max_steps=2", "trainer.batch_size=4", "trainer.eval_every=0"]


def _overrides(tmp_path) -> list[str]:
    return [*ner_files_and_backbone(tmp_path, 16, 8), *STEPS]  # a backbone of 64 positions


def test_a_preset_length_over_the_positions_is_cut_and_said(tmp_path, monkeypatch, caplog):
    overrides = _overrides(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = compose_config("finetune", overrides)
    assert cfg.data.max_seq_len > 64  # the preset's value
    with caplog.at_level(logging.INFO, logger="lmtrain.commands.finetune"):
        summary = finetune.run(cfg)
    assert summary["config"]["data"]["max_seq_len"] == 64
    assert f"the data preset's {cfg.data.max_seq_len} is longer than the model's 64 positions; using 64" in caplog.text


def test_a_typed_length_over_the_positions_is_refused(tmp_path):
    proc = run_cli(
        "finetune", *_overrides(tmp_path), "data.max_seq_len=100", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "data.max_seq_len=100 is longer than the 64 positions of the model from" in proc.stderr
    assert "use data.max_seq_len=64 or less" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
