"""A run's record of where its plugs came from, ``.hydra/plugs.json`` (issue 26, item 3), hand-edited.

The recorded search path is only ever a list of absolute ``file://`` folders (YAML to read); the plug
folders are only named in messages, never put on the module path. Each probe damages the record of a
copy of the finished run and holds when the command is refused with exit 2 naming the key and the
file (or, for a plug that does not import, naming the module, its recorded folder and what to type),
nothing planted ran, and the run folder is unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from hostile.common import Outcome, Workspace, digest, refused

RECORD = Path(".hydra") / "plugs.json"


def _with_record(ws: Workspace, name: str, text: str) -> Path:
    run = ws.fresh_run(name)
    (run / RECORD).unlink(missing_ok=True)
    (run / RECORD).write_text(text)
    return run


def _resume_refused(ws: Workspace, run: Path, *fragments: str) -> Outcome:
    before = digest(run)
    proc = ws.lmtrain("resume", str(run), "trainer.max_steps=6")
    outcome = refused(proc, fragments[0], digest(run) == before)
    outcome.held = outcome.held and all(fragment in proc.stderr for fragment in fragments)
    return outcome


def package_search_path(ws: Workspace) -> Outcome:
    run = _with_record(ws, "provenance-pkg", json.dumps({"searchpath": ["pkg://os"], "plugs": {}}))
    return _resume_refused(ws, run, f"searchpath[0] in {run / RECORD}", "is not a `file://` folder")


def relative_search_path(ws: Workspace) -> Outcome:
    run = _with_record(ws, "provenance-relative", json.dumps({"searchpath": ["file://configs"], "plugs": {}}))
    return _resume_refused(ws, run, f"searchpath[0] in {run / RECORD}", "is not an absolute folder")


def override_smuggled_in_search_path(ws: Workspace) -> Outcome:
    """An entry that, pasted into an override, would close the list and add a Hydra callback."""
    marker = ws.root / "MARKER-provenance-odd"
    entry = f"file:///tmp'],hydra.callbacks.x._target_=pathlib.Path.touch,hydra.callbacks.x._args_=['{marker}"
    run = _with_record(ws, "provenance-odd", json.dumps({"searchpath": [entry], "plugs": {}}))
    outcome = _resume_refused(ws, run, f"searchpath[0] in {run / RECORD}", "not an absolute folder in plain form")
    outcome.held = outcome.held and not marker.exists()
    return outcome


def parent_folder_in_search_path(ws: Workspace) -> Outcome:
    run = _with_record(ws, "provenance-dotdot", json.dumps({"searchpath": [f"file://{ws.root}/../etc"], "plugs": {}}))
    return _resume_refused(ws, run, f"searchpath[0] in {run / RECORD}", "without `..`")


def record_is_a_link(ws: Workspace) -> Outcome:
    run = ws.fresh_run("provenance-link")
    elsewhere = ws.root / "elsewhere.json"
    elsewhere.write_text(json.dumps({"searchpath": [], "plugs": {}}))
    (run / RECORD).unlink(missing_ok=True)
    os.symlink(elsewhere, run / RECORD)
    return _resume_refused(ws, run, f"the file in {run / RECORD}", "symbolic link")


def truncated_record(ws: Workspace) -> Outcome:
    run = _with_record(ws, "provenance-truncated", '{"searchpath": ["file:///tmp/con')
    return _resume_refused(ws, run, f"the file in {run / RECORD}", "it is not JSON")


def record_not_json(ws: Workspace) -> Outcome:
    run = ws.fresh_run("provenance-binary")
    (run / RECORD).unlink(missing_ok=True)
    (run / RECORD).write_bytes(b"\x80\x04\x95 not json at all")
    before = digest(run)
    proc = ws.lmtrain("evaluate", f"ckpt={run}", f"hydra.run.dir={ws.root / 'provenance-binary-eval'}")
    return refused(proc, f"the file in {run / RECORD}", digest(run) == before)


def plug_module_not_importable(ws: Workspace) -> Outcome:
    """The run names a plug in a folder that is not on the module path: the message says what to type, and the
    folder is not imported from (its module would leave a marker)."""
    folder = ws.root / "someone-elses-plugs"
    marker = ws.root / "MARKER-provenance-import"
    (folder / "probe_plug").mkdir(parents=True, exist_ok=True)
    (folder / "probe_plug" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Objective: pass\n")
    target = "probe_plug.Objective"
    run = _with_record(
        ws,
        "provenance-import",
        json.dumps(
            {
                "searchpath": [],
                "plugs": {"objective": {"target": target, "module": "probe_plug", "folder": str(folder)}},
            }
        ),
    )
    meta_file = (run / "checkpoints" / "last").resolve() / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["objective_config"]["_target_"] = target
    meta_file.write_text(json.dumps(meta))
    before = digest(run)
    proc = ws.lmtrain("evaluate", f"ckpt={run}", f"hydra.run.dir={ws.root / 'provenance-import-eval'}")
    outcome = refused(proc, f"{target} cannot be imported", digest(run) == before and not marker.exists())
    outcome.held = (
        outcome.held
        and f"The run found it in {folder}" in proc.stderr
        and f"`PYTHONPATH={folder} lmtrain ...`" in proc.stderr
    )
    return outcome


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "3 recorded search path pkg://": package_search_path,
    "3 recorded search path relative": relative_search_path,
    "3 recorded search path smuggles an override": override_smuggled_in_search_path,
    "3 recorded search path with ..": parent_folder_in_search_path,
    "3 record is a symbolic link": record_is_a_link,
    "3 record truncated": truncated_record,
    "3 record not JSON (evaluate)": record_not_json,
    "3 recorded plug module not importable": plug_module_not_importable,
}
