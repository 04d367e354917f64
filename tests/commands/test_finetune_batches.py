"""Fine-tuning batches: grouped by length, and a resumed run sees exactly the batches (and losses)
of an uninterrupted one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmtrain.commands import finetune
from lmtrain.data.collate import PadCollator
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import compose_config, stopping_after_step
from tests.tasks.fixtures import ner_files_and_backbone

STEPS = [
    "trainer.progress=false",
    "trainer.max_steps=12",
    "trainer.batch_size=8",
    "trainer.eval_every=0",
    "trainer.log_every=1",
    "trainer.save_every=6",
    "trainer.keep_last=0",
    "finetune.head_dropout=0.1",
    "data.max_seq_len=32",
]


def _run(workdir: Path, overrides: list[str]) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return finetune.run(compose_config("finetune", overrides))
    finally:
        os.chdir(cwd)


def _losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e}


@pytest.fixture
def overrides(tmp_path) -> list[str]:
    # one fixed backbone: every run starts from the same weights and tokenizer
    return [*ner_files_and_backbone(tmp_path, 160, 20), *STEPS]


def test_finetune_batches_are_bucketed_and_resume_exactly(tmp_path, overrides, monkeypatch):
    widths = {"bucketed": [], "plain": []}
    collate = PadCollator.__call__

    def recording(kind):
        def call(self, examples):
            batch = collate(self, examples)
            widths[kind].append(batch["input_ids"].numel() - int(batch["attention_mask"].sum()))
            return batch

        return call

    monkeypatch.setattr(PadCollator, "__call__", recording("bucketed"))
    _run(tmp_path / "straight", overrides)
    monkeypatch.setattr(PadCollator, "__call__", recording("plain"))
    _run(tmp_path / "plain", [*overrides, "trainer.bucket_by_length=false"])
    monkeypatch.setattr(PadCollator, "__call__", collate)
    # padding tokens of the 12 training batches (evaluation batches come later and are sorted either way)
    assert sum(widths["bucketed"][:12]) < 0.5 * sum(widths["plain"][:12])

    with stopping_after_step(6), pytest.raises(SystemExit):
        _run(tmp_path / "resumed", overrides)
    _run(tmp_path / "resumed", [*overrides, "trainer.resume=auto"])
    expected, got = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert sorted(got) == list(range(1, 13))
    assert [got[s] for s in range(7, 13)] == [expected[s] for s in range(7, 13)]
