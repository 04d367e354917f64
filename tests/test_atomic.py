"""What lmtrain writes: checkpoints, data caches and exports follow the user's umask; nothing is written
through a link, and a run folder's files are recorded before they are created."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lmtrain.errors import UserError
from lmtrain.files.atomic import atomic_directory, current_umask
from lmtrain.models.hf_interop import write_hf_folder
from tests.conftest import compose_config


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


# --- never through a link, never over a file lmtrain did not write (issue 24, items 1 and 2) ---


@pytest.fixture
def target(tmp_path) -> Path:
    """A file outside the run folder that links will point at."""
    path = tmp_path / "important.txt"
    path.write_text("keep me")
    return path


def test_run_files_are_never_written_through_a_link(tmp_path, target):
    from lmtrain.run_folder.claim import write_config_record
    from lmtrain.run_folder.layout import RunDir
    from lmtrain.run_folder.status import read_status, write_status

    run = RunDir(tmp_path / "run")
    (run.path / "metrics.jsonl").symlink_to(target)
    (run.path / ".status.json.tmp").symlink_to(target)  # where the status was staged before
    (run.path / ".hydra").mkdir()
    (run.path / ".hydra" / ".config.yaml.tmp").symlink_to(target)
    with pytest.raises(UserError, match=r"metrics.jsonl is a symbolic link"):
        run.log(1, {"train/loss": 1.0})
    assert write_status(run.path, "running") == run.path / "status.json"
    assert read_status(run.path)["state"] == "running"
    write_config_record(run.path, compose_config("generate", ["ckpt=x"]), resuming=False)
    assert target.read_text() == "keep me"
    (run.path / "summary.json").symlink_to(target)
    with pytest.raises(UserError, match=r"summary.json is a symbolic link"):
        run.write_summary({"steps": 1})
    assert write_status(run.path / "summary.json", "running") is None  # a status failure is logged, not raised
    assert target.read_text() == "keep me" and (run.path / "summary.json").is_symlink()


def test_a_tokenizer_is_not_saved_through_a_link(tmp_path, target):
    from lmtrain.config.training import TokenizerConfig
    from lmtrain.data.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(
        ["the fire spread across the hills"] * 20, TokenizerConfig(kind="wordpiece", vocab_size=60)
    )
    (tmp_path / "tokenizer.json").symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        tokenizer.save(tmp_path / "tokenizer.json")
    assert target.read_text() == "keep me"


def test_remove_entry_removes_a_link_never_its_target(tmp_path, target):
    from lmtrain.files.atomic import remove_entry

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "inner").symlink_to(target)
    (tmp_path / "dir_link").symlink_to(folder, target_is_directory=True)
    remove_entry(tmp_path / "dir_link")
    assert folder.is_dir() and (folder / "inner").is_symlink()
    remove_entry(folder)
    assert not folder.exists() and target.read_text() == "keep me"


def test_a_run_folder_records_each_entry_before_it_is_created(tmp_path):
    from lmtrain.files.atomic import make_dirs, open_text, write_text
    from lmtrain.run_folder.manifest import MANIFEST_FILE, RunManifest

    manifest = RunManifest(tmp_path)
    assert manifest.start() and not manifest.start()
    write_text(tmp_path / "summary.json", "{}")
    make_dirs(tmp_path / "tb" / "inner")
    with open_text(tmp_path / "metrics.jsonl") as f:
        f.write("{}\n")
    assert manifest.names() == {"summary.json", "tb", "metrics.jsonl"}  # top-level entries only
    (tmp_path / "notes.txt").write_text("the user's")
    with pytest.raises(UserError, match=rf"notes.txt is already there and lmtrain did not write it .*{MANIFEST_FILE}"):
        write_text(tmp_path / "notes.txt", "lmtrain's")
    with pytest.raises(UserError, match="did not write it"):
        open_text(tmp_path / "notes.txt").close()
    assert (tmp_path / "notes.txt").read_text() == "the user's"
    assert manifest.foreign(["notes.txt", "summary.json", "absent"]) == [tmp_path / "notes.txt"]
    manifest.forget(["tb"])
    assert manifest.names() == {"summary.json", "metrics.jsonl"}


def test_a_manifest_that_is_a_link_is_refused(tmp_path, target):
    from lmtrain.run_folder.manifest import MANIFEST_FILE, RunManifest

    (tmp_path / MANIFEST_FILE).symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        RunManifest(tmp_path).start()
    assert target.read_text() == "keep me"
