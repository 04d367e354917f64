"""What the training loop costs beside the model's own work: no garbage-collector pass over the objects
built before training (a full pass over a CLI run's ~300k objects took ~110 ms, one per short run)."""

from __future__ import annotations

import gc
from pathlib import Path

from lmtrain.commands import pretrain
from lmtrain.training.trainer import Trainer
from tests.conftest import TINY, compose_config, write_corpus


def _run_recording_frozen_objects(tmp_path: Path, monkeypatch) -> list[int]:
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=30)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    frozen: list[int] = []
    step = Trainer._train_step

    def recording_step(self, sums):
        frozen.append(gc.get_freeze_count())
        step(self, sums)

    monkeypatch.setattr(Trainer, "_train_step", recording_step)
    overrides = [*TINY, "data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}"]
    pretrain.run(compose_config("pretrain", [*overrides, "trainer.max_steps=3", "trainer.eval_every=0"]))
    return frozen


def test_objects_built_before_training_are_left_out_of_garbage_collection_while_it_runs(tmp_path, monkeypatch):
    assert gc.get_freeze_count() == 0
    frozen = _run_recording_frozen_objects(tmp_path, monkeypatch)
    assert len(frozen) == 3 and min(frozen) > 1000, frozen
    assert gc.get_freeze_count() == 0  # collected as before once training ends: later work in the process frees them


def test_objects_someone_else_froze_stay_frozen(tmp_path, monkeypatch):
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        _run_recording_frozen_objects(tmp_path, monkeypatch)
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()


def test_the_progress_bar_redraws_at_most_twice_a_second():
    """Each redraw runs on rich's own thread and stops one of the two threads of every matrix product: at rich's
    default of 10 a second, a 40-step BERT-mini run in a terminal trained 2-4% slower."""
    from lmtrain.training.progress import TrainingProgress

    bar = TrainingProgress(total_steps=10, start_step=0, enabled=True)
    assert bar.progress.live.refresh_per_second <= 2
