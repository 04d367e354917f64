"""Checkpoints, data caches and exported models follow the user's umask, not the temporary-file defaults."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lmtrain.atomic import atomic_directory, current_umask
from lmtrain.models.hf_interop import write_hf_folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_current_umask_reads_the_process_umask(umask):
    assert current_umask() == umask


def test_atomic_directory_follows_the_umask(tmp_path, umask):
    final = tmp_path / "checkpoints" / "step-1"
    with atomic_directory(final) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))  # safetensors itself writes 0600
        (tmp / "sub").mkdir()
        (tmp / "sub" / "model.json").write_text("{}")
    assert _mode(final) == _mode(final / "sub") == 0o777 & ~umask  # 0755 / 0700
    assert _mode(final / "model.safetensors") == _mode(final / "sub" / "model.json") == 0o666 & ~umask


def test_exported_hf_folder_follows_the_umask(tmp_path, umask):
    out = write_hf_folder(tmp_path / "export", {"model_type": "bert"}, {"w": torch.zeros(2)}, None)
    assert _mode(out) == 0o777 & ~umask
    assert _mode(out / "model.safetensors") == _mode(out / "config.json") == 0o666 & ~umask
