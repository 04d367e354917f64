"""The run folder: a bad hydra.run.dir is one paragraph, and a command refused before any work leaves no folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmtrain.errors import UserError
from lmtrain.run_folder.placement import RunPlacement
from tests.conftest import run_cli


def _tree(folder: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def test_a_run_folder_that_is_a_file_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "taken").write_text("a file of the user's")
    before = _tree(tmp_path)
    for value, said in (("taken", "is a file, not a folder"), ("taken/run", "a file is in the way")):
        out = run_cli("generate", "ckpt=whatever", f"hydra.run.dir={value}", cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert f"hydra.run.dir={value}" in out.stderr and said in out.stderr
        assert _tree(tmp_path) == before


def test_a_folder_that_cannot_be_made_is_one_paragraph(tmp_path, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(UserError, match=r"cannot create the run folder .*Permission denied"):
        RunPlacement.prepare(str(tmp_path / "locked" / "run"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_run_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = run_cli("generate", "ckpt=whatever", f"hydra.run.dir={locked}", cwd=tmp_path)
    assert out.returncode == 2 and "is not writable" in out.stderr and "Traceback" not in out.stderr


def test_commands_refused_before_any_work_leave_no_run_folders(tmp_path):
    mistakes = [
        ("generate",),
        ("pretrain", "data=text", "data.train_files=[missing.txt]"),
        ("embed", "method=load", "path=missing.txt"),
    ]
    for args in mistakes:
        out = run_cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file() or p.name[:2].isdigit()]
    out = run_cli("generate", "hydra.run.dir=runs/a/b", cwd=tmp_path)  # folders it made for the run go too
    assert out.returncode == 2 and not (tmp_path / "runs").exists()


def test_a_refused_command_leaves_a_folder_of_the_users_as_it_was(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    before = _tree(folder)
    out = run_cli("pretrain", "data=text", "data.train_files=[missing.txt]", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert out.returncode == 2 and "missing.txt" in out.stderr
    assert _tree(folder) == before  # its .lmtrain-files, .lock, .hydra/, status.json and log are gone again
    empty = tmp_path / "empty"
    empty.mkdir()
    run_cli("generate", f"hydra.run.dir={empty}", cwd=tmp_path)
    assert empty.is_dir() and not list(empty.iterdir())  # the user's folder stays, empty as it was


def test_a_path_that_fails_halfway_leaves_no_folders(tmp_path, monkeypatch):
    made = []
    real_mkdir = os.mkdir

    def mkdir_then_refuse(path, *args, **kwargs):
        if made:
            raise PermissionError(13, "Permission denied", str(path))
        real_mkdir(path, *args, **kwargs)
        made.append(path)

    monkeypatch.setattr(os, "mkdir", mkdir_then_refuse)
    with pytest.raises(UserError, match="Permission denied"):
        RunPlacement.prepare(str(tmp_path / "a" / "b"))
    assert made and not (tmp_path / "a").exists()
