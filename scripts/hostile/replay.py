"""Replayed configs: a shared run folder whose saved config or overrides name code to run (issue 24, items 4 and 5).

Each probe plants a call in a copy of the finished run that would copy a file to a marker (or print
Python's poem) if anything ran it; the probe holds when the command is refused with exit 2 naming the
key, the marker does not exist and the run folder is unchanged.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from hostile.common import Outcome, Workspace, digest, refused


def _marker(ws: Workspace, name: str) -> tuple[Path, Path]:
    """A file to copy and the marker a copy would create (absent)."""
    source = ws.root / "secret.txt"
    source.write_text("the user's secret")
    marker = ws.root / f"MARKER-{name}"
    marker.unlink(missing_ok=True)
    return source, marker


def _append_overrides(run: Path, *lines: str) -> Path:
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(yaml.safe_dump(yaml.safe_load(overrides.read_text()) + list(lines)))
    return overrides


def _with_hydra_node(run: Path, hydra: dict) -> Path:
    config_file = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["hydra"] = hydra
    config_file.write_text(yaml.safe_dump(config))
    return config_file


def callback_in_saved_overrides(ws: Workspace) -> Outcome:
    run = ws.fresh_run("replay-overrides")
    source, marker = _marker(ws, "overrides")
    _append_overrides(
        run, "+hydra.callbacks.x._target_=shutil.copyfile", f"+hydra.callbacks.x._args_=[{source},{marker}]"
    )
    before = digest(run)
    proc = ws.lmtrain("resume", str(run), "trainer.max_steps=6")
    return refused(proc, "+hydra.callbacks.x._target_=shutil.copyfile", not marker.exists() and digest(run) == before)


def callback_in_saved_config(ws: Workspace) -> Outcome:
    run = ws.fresh_run("replay-config")
    source, marker = _marker(ws, "config")
    _with_hydra_node(run, {"callbacks": {"x": {"_target_": "shutil.copyfile", "_args_": [str(source), str(marker)]}}})
    before = _outputs(ws)
    proc = ws.lmtrain("pretrain", "--config-dir", str(run / ".hydra"), "--config-name", "config", *ws.data)
    return refused(proc, "hydra.callbacks.x", not marker.exists() and _outputs(ws) == before)


def _outputs(ws: Workspace) -> set[str]:
    """Every path under the workspace's ``outputs/`` (other probes' commands may have made some already)."""
    return {str(p) for p in (ws.root / "outputs").rglob("*")}


def logging_factory_in_saved_config(ws: Workspace) -> Outcome:
    run = ws.fresh_run("replay-logging")
    source, marker = _marker(ws, "logging")
    handler = {"()": "shutil.copyfile", "src": str(source), "dst": str(marker)}
    _with_hydra_node(run, {"job_logging": {"handlers": {"x": handler}}})
    proc = ws.lmtrain("pretrain", "--config-dir", str(run / ".hydra"), "--config-name=config", *ws.data)
    return refused(proc, "hydra.job_logging.handlers.x", not marker.exists())


def _resume_with_saved(ws: Workspace, name: str, override: str, fragment: str) -> Outcome:
    """``lmtrain resume`` of a copy of the finished run whose overrides.yaml gained ``override``."""
    run = ws.fresh_run(name)
    _append_overrides(run, override)
    before = digest(run)
    proc = ws.lmtrain("resume", str(run), "trainer.max_steps=6")
    return refused(proc, fragment, digest(run) == before)


def environment_resolver_in_saved_overrides(ws: Workspace) -> Outcome:
    return _resume_with_saved(ws, "replay-env", "trainer.max_time=${oc.env:HOME}", "calls the resolver `oc.env`")


def another_plug_on_resume(ws: Workspace) -> Outcome:
    return _resume_with_saved(
        ws, "replay-plug", "model._target_=yaml.YAMLObject", "not the plug the run was trained with"
    )


def standard_library_plug(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "debug=tiny", *ws.data, "model._target_=this.Foo")
    return refused(proc, "standard library", "Beautiful is better" not in proc.stdout)


def relative_plug(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "debug=tiny", *ws.data, "objective._target_=.foo.Bar")
    return refused(proc, "is not the dotted path of a class")


class _CopiesWhenUnpickled:
    def __init__(self, source: Path, marker: Path) -> None:
        self.args = (str(source), str(marker))

    def __reduce__(self):
        return shutil.copyfile, self.args


def pickled_rerun(ws: Workspace) -> Outcome:
    source, marker = _marker(ws, "pickle")
    saved = ws.root / "config.pickle"
    saved.write_bytes(pickle.dumps(_CopiesWhenUnpickled(source, marker)))
    proc = ws.lmtrain("pretrain", "--experimental-rerun", str(saved))
    return refused(proc, "never unpickles", not marker.exists())


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "4 callback in saved overrides (resume)": callback_in_saved_overrides,
    "4 callback in saved config (--config-dir)": callback_in_saved_config,
    "4 logging () factory in saved config": logging_factory_in_saved_config,
    "4 ${oc.env:...} in saved overrides": environment_resolver_in_saved_overrides,
    "4 --experimental-rerun of a pickle": pickled_rerun,
    "5 resume with another plug _target_": another_plug_on_resume,
    "5 _target_=this.Foo (no poem)": standard_library_plug,
    "5 relative _target_": relative_plug,
}
