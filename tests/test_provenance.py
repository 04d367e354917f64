"""``.hydra/plugs.json``, a run's record of where its plugs came from: what is written, and what is refused."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lmtrain.errors import UserError
from lmtrain.plugs import plug_class
from lmtrain.run_folder.provenance import absolute_search_path, module_folder, read_provenance, record_text


def _run_with(tmp_path: Path, record: object, raw: bool = False) -> Path:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "plugs.json").write_text(record if raw else json.dumps(record))
    return run


def test_the_record_holds_absolute_file_folders_and_user_plugs_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_search_path(["file://configs", "pkg://my_pkg.configs"]) == [f"file://{tmp_path / 'configs'}"]
    record = json.loads(
        record_text(
            {"model": "lmtrain.models.families.TransformerFamily", "objective": "tests.test_provenance.Nothing"},
            ["file://configs"],
        )
    )
    assert record == {
        "searchpath": [f"file://{tmp_path / 'configs'}"],
        "plugs": {
            "objective": {
                "target": "tests.test_provenance.Nothing",
                "module": "tests.test_provenance",
                "folder": str(Path(__file__).resolve().parents[1]),
            }
        },
    }
    assert module_folder("no_such_module_anywhere") is None


def test_a_record_reads_back_and_names_the_override_to_replay(tmp_path):
    run = _run_with(tmp_path, {"searchpath": ["file:///opt/my configs"], "plugs": {}})
    record = read_provenance(run)
    assert record.search_path_override() == "hydra.searchpath=['file:///opt/my configs']"
    assert read_provenance(tmp_path / "no-run") is None  # a run made before lmtrain kept the record


@pytest.mark.parametrize(
    "record,key,why",
    [
        ({"searchpath": ["pkg://os"]}, "searchpath[0]", "is not a `file://` folder"),
        ({"searchpath": ["file://configs"]}, "searchpath[0]", "is not an absolute folder in plain form"),
        ({"searchpath": ["file:///a/../etc"]}, "searchpath[0]", "without `..`"),
        ({"searchpath": ["file:///a'],hydra.callbacks.x._target_=os.system"]}, "searchpath[0]", "quotes or brackets"),
        ({"searchpath": "file:///a"}, "searchpath", "not a list of folders"),
        ({"plugs": {"model": {"target": "os.system"}}}, "plugs.model.target", "standard library"),
        ({"plugs": {"model": {"target": "a.B", "folder": "rel/dir"}}}, "plugs.model.folder", "not an absolute folder"),
        ('{"searchpath": ["file:///a', "the file", "it is not JSON"),
        ("[1, 2]", "the file", "not a JSON object"),
    ],
)
def test_a_hand_edited_record_is_refused_naming_key_and_file(tmp_path, record, key, why):
    run = _run_with(tmp_path, record, raw=isinstance(record, str))
    with pytest.raises(UserError) as refused:
        read_provenance(run)
    message = str(refused.value)
    assert f"{key} in {run / '.hydra' / 'plugs.json'}: " in message and why in message
    assert "nothing named in it was imported or run" in message and "\n" not in message


def test_a_record_that_is_a_link_is_refused(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"searchpath": []}))
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    os.symlink(target, tmp_path / "run" / ".hydra" / "plugs.json")
    with pytest.raises(UserError, match="is a symbolic link; lmtrain never reads its records through a link"):
        read_provenance(tmp_path / "run")


def test_the_newest_resume_record_is_read(tmp_path):
    run = _run_with(tmp_path, {"searchpath": ["file:///first"]})
    for n, folder in ((1, "/second"), (2, "/third")):
        (run / ".hydra" / f"resume-{n}").mkdir()
        (run / ".hydra" / f"resume-{n}" / "plugs.json").write_text(json.dumps({"searchpath": [f"file://{folder}"]}))
    assert read_provenance(run).searchpath == ("file:///third",)


def test_a_plug_that_does_not_import_is_named_with_its_recorded_folder(tmp_path):
    run = _run_with(
        tmp_path,
        {
            "plugs": {
                "task": {
                    "target": "gone_package.tasks.MyTask",
                    "module": "gone_package.tasks",
                    "folder": "/home/someone/plugs",
                }
            }
        },
    )
    read_provenance(run)
    with pytest.raises(UserError) as refused:
        plug_class("gone_package.tasks.MyTask", "task")
    message = str(refused.value)
    assert "task._target_=gone_package.tasks.MyTask cannot be imported (ModuleNotFoundError" in message
    assert f"The run found it in /home/someone/plugs (recorded in {run / '.hydra' / 'plugs.json'})" in message
    assert "`PYTHONPATH=/home/someone/plugs lmtrain ...`" in message
    assert "/home/someone/plugs" not in sys.path  # named, never added


class Nothing:
    """A class for the record's test to name."""
