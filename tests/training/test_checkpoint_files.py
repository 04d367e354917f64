"""Checkpoints under hostile use: damaged files, pickled code, a full disk, fallback on resume."""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path

import pytest
import torch

from lmtrain.errors import UserError
from lmtrain.files import checkpoints as checkpoint_files
from lmtrain.models.hf_interop import load_hf_folder
from lmtrain.training import checkpoint as ckpt


class RunsShell:
    """Unpickling this runs ``touch <marker>``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _save(checkpoints: Path, step: int, size: int = 64) -> Path:
    torch.manual_seed(step)
    model = torch.nn.Linear(size, size)
    state = {
        "train": {"step": step},
        "optimizer": {"exp_avg": torch.randn(size, size), "exp_avg_sq": torch.randn(size, size)},
    }
    return ckpt.save_checkpoint(checkpoints, step, model, {"family": "test"}, state, None)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_pickled_trainer_state_is_refused_without_running_it(tmp_path):
    checkpoint = _save(tmp_path / "checkpoints", 1)
    marker = tmp_path / "ran"
    torch.save({"train": RunsShell(marker)}, checkpoint / checkpoint_files.TRAINER_STATE)
    with pytest.raises(UserError) as error:
        ckpt.load_trainer_state(checkpoint)
    message = str(error.value)
    assert "is not a plain tensor checkpoint; refusing to unpickle it" in message
    assert str(checkpoint / checkpoint_files.TRAINER_STATE) in message and "weights_only=False" not in message
    assert not marker.exists()


def test_a_pickled_pytorch_model_bin_in_a_hf_folder_is_refused(tmp_path):
    marker = tmp_path / "ran"
    transformers = pytest.importorskip("transformers")
    transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ).save_pretrained(tmp_path)
    torch.save({"bert.embeddings": RunsShell(marker)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError, match="pytorch_model.bin is not a plain tensor checkpoint; refusing to unpickle"):
        load_hf_folder(tmp_path)
    assert not marker.exists()


def test_an_incomplete_hf_config_is_a_named_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UserError, match=r"config.json lacks or mistypes a setting .*max_position_embeddings"):
        load_hf_folder(tmp_path)


@pytest.mark.parametrize("name", [checkpoint_files.WEIGHTS, checkpoint_files.TRAINER_STATE])
def test_truncated_files_are_named_errors(tmp_path, name):
    checkpoint = _save(tmp_path / "checkpoints", 1)
    _truncate(checkpoint / name)
    load = checkpoint_files.read_weights if name == checkpoint_files.WEIGHTS else ckpt.load_trainer_state
    with pytest.raises(UserError, match=f"{checkpoint / name} is unreadable .*truncated or corrupt"):
        load(checkpoint)
    assert name in ckpt.checkpoint_problem(checkpoint)


def test_resume_auto_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    older, newest = _save(checkpoints, 2), _save(checkpoints, 4)
    _truncate(newest / checkpoint_files.WEIGHTS)
    with caplog.at_level("WARNING"):
        assert ckpt.resume_checkpoint("auto", checkpoints) == older.resolve()
    assert str(newest) in caplog.text and str(older) in caplog.text and "damaged" in caplog.text
    _truncate(older / checkpoint_files.TRAINER_STATE)
    with pytest.raises(UserError, match="no intact checkpoint"):
        ckpt.resume_checkpoint("auto", checkpoints)


def test_resume_from_a_named_damaged_checkpoint_is_refused(tmp_path):
    checkpoint = _save(tmp_path / "checkpoints", 3)
    _truncate(checkpoint / checkpoint_files.TRAINER_STATE)
    with pytest.raises(UserError, match=r"trainer.resume=.* cannot be resumed from \(trainer_state.pt"):
        ckpt.resume_checkpoint(str(checkpoint), tmp_path / "other")


@pytest.mark.parametrize("size", [600, 400])  # weights over the limit; then only the trainer state over it
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, size):
    checkpoints = tmp_path / "checkpoints"
    previous = _save(checkpoints, 1, size=64)
    with pytest.raises(UserError) as error, file_size_limit_context():
        _save(checkpoints, 2, size=size)
    message = str(error.value)
    assert f"could not write checkpoint step-2 in {checkpoints}" in message and "MiB are free" in message
    assert f"previous checkpoint {previous.resolve()} is intact" in message
    assert (checkpoints / checkpoint_files.LAST).resolve() == previous.resolve() and ckpt.checkpoint_problem(
        previous
    ) is None
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last", "step-1"]  # no half-written step-2


class file_size_limit_context:
    """The ``file_size_limit`` fixture as a context manager (only the save runs under the limit)."""

    def __enter__(self):
        self._handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self._limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, self._limits[1]))

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_FSIZE, self._limits)
        signal.signal(signal.SIGXFSZ, self._handler)
