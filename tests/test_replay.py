"""A replayed config (a run's saved `.hydra` record) is data: whatever in it would run code is refused, by key and
file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from lmtrain.cli.main import config_dir
from lmtrain.config.replay import check_config_rerun, check_resumed_overrides
from lmtrain.errors import UserError
from tests.conftest import compose_config

RERUN = [
    "++hydra.run.dir=outputs/pretrain/x",
    "++hydra.job.name=pretrain",
    "++hydra.output_subdir=null",
    "++hydra.job_logging.handlers.file.class=lmtrain.run_folder.job_log.JobLogHandler",
    "++hydra.callbacks.sweep_summary._target_=lmtrain.runs.sweep.SweepSummary",
]  # what the CLI adds


@pytest.fixture(scope="module")
def saved_text() -> str:
    """A run's `.hydra/config.yaml` as lmtrain writes it."""
    return OmegaConf.to_yaml(compose_config("pretrain", ["debug=tiny"]))


def _record(folder: Path, text: str, extra: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(text)
    for dotted, value in (extra or {}).items():
        node = config
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _rerun(folder: Path, *args: str) -> None:
    check_config_rerun(
        "pretrain", ["--config-dir", str(folder), "--config-name", "config", *args, *RERUN], config_dir()
    )


def test_a_saved_config_as_lmtrain_wrote_it_replays(saved_text, tmp_path):
    _rerun(_record(tmp_path / ".hydra", saved_text), "trainer.max_steps=3")
    _rerun(_record(tmp_path / ".hydra", saved_text), "-m", "optim.lr=1e-3,2e-3")
    folder = _record(
        tmp_path / "with_dirs",
        saved_text,
        {
            "hydra.run.dir": "runs/${now:%H-%M}",
            "hydra.job.name": "pretrain",
            "hydra.searchpath": [f"file://{tmp_path}"],
        },
    )
    _rerun(folder)


REFUSED_IN_CONFIG = {
    "callback": ({"hydra.callbacks.x": {"_target_": "shutil.copyfile", "_args_": ["a", "b"]}}, "hydra.callbacks.x"),
    "logging handler factory": (
        {"hydra.job_logging.handlers.x": {"()": "shutil.rmtree", "path": "/tmp/x"}},
        "hydra.job_logging",
    ),
    "logging handler class": (
        {"hydra.hydra_logging.handlers.console.class": "mymodule.Handler"},
        "hydra.hydra_logging",
    ),
    "launcher": ({"hydra.launcher._target_": "shutil.rmtree"}, "hydra.launcher._target_"),
    "sweeper": ({"hydra.sweeper._target_": "shutil.rmtree"}, "hydra.sweeper._target_"),
    "environment": ({"hydra.job.env_set.LD_PRELOAD": "/tmp/evil.so"}, "hydra.job.env_set.LD_PRELOAD"),
    "output subdir": ({"hydra.output_subdir": "../../elsewhere"}, "hydra.output_subdir"),
    "package search path": ({"hydra.searchpath": ["pkg://this"]}, "pkg://this"),
    "environment resolver": ({"trainer.max_time": "${oc.env:HOME}"}, "trainer.max_time"),
    "nested resolver": ({"tokenizer.path": "${trainer.${oc.decode:x}}"}, "tokenizer.path"),
    "run dir from the environment": ({"hydra.run.dir": "${oc.env:HOME}/x"}, "hydra.run.dir"),
    "target outside a plug": ({"optim._target_": "shutil.rmtree"}, "optim._target_"),
    "nested target": ({"model.extra": {"_target_": "shutil.rmtree"}}, "model.extra._target_"),
    "standard library plug": ({"model._target_": "this.Foo"}, "standard library"),
    "relative plug": ({"model._target_": ".foo.Bar"}, "not the dotted path of a class"),
    "defaults list": ({"defaults": [{"override hydra/job_logging": "evil"}]}, "defaults"),
}


@pytest.mark.parametrize("case", REFUSED_IN_CONFIG)
def test_what_would_run_code_in_a_saved_config_is_refused_by_key_and_file(case, saved_text, tmp_path, capsys):
    extra, named = REFUSED_IN_CONFIG[case]
    folder = _record(tmp_path / ".hydra", saved_text, extra)
    with pytest.raises(UserError) as refused:
        _rerun(folder)
    assert named in str(refused.value) and str(folder / "config.yaml") in str(refused.value)
    assert "Beautiful is better" not in capsys.readouterr().out  # `this` was never imported


def test_a_package_header_that_moves_the_file_into_hydra_is_refused(tmp_path):
    folder = tmp_path / ".hydra"
    folder.mkdir()
    (folder / "config.yaml").write_text("# @package hydra\ncallbacks:\n  x:\n    _target_: shutil.copyfile\n")
    with pytest.raises(UserError, match="hydra.callbacks.x._target_"):
        _rerun(folder)


def test_every_spelling_of_the_primary_config_flag_is_checked(saved_text, tmp_path):
    folder = _record(tmp_path / ".hydra", saved_text, {"hydra.callbacks.x._target_": "shutil.copyfile"})
    for flags in (
        ["--config-name=config"],
        ["-cn", "config"],
        ["--config-n", "config"],
        ["--config-path", str(folder), "--config-name", "config"],
    ):
        with pytest.raises(UserError, match="hydra.callbacks.x"):
            check_config_rerun("pretrain", ["--config-dir", str(folder), *flags], config_dir())


def test_the_saved_hydra_record_is_no_primary_config_either(saved_text, tmp_path):
    folder = _record(tmp_path / ".hydra", saved_text)
    (folder / "hydra.yaml").write_text("hydra:\n  job_logging:\n    version: 1\n")
    with pytest.raises(UserError, match="hydra.job_logging"):
        check_config_rerun("pretrain", ["--config-dir", str(folder), "--config-name", "hydra"], config_dir())


def test_a_pickled_rerun_is_refused(tmp_path):
    with pytest.raises(UserError, match="never unpickles"):
        check_config_rerun("pretrain", ["--experimental-rerun", str(tmp_path / "config.pickle")], config_dir())


def test_what_the_user_types_is_what_runs(saved_text, tmp_path):
    folder = _record(tmp_path / ".hydra", saved_text)
    _rerun(
        folder, "+hydra.callbacks.mine._target_=my.Callback", "hydra/job_logging=disabled", "model._target_=my.Family"
    )
    check_config_rerun("pretrain", ["--config-dir", str(tmp_path), "trainer.max_steps=3"], config_dir())  # own folder


@pytest.fixture
def run_record(saved_text, tmp_path) -> Path:
    """A run's `.hydra` folder whose model is a user's own plug."""
    return _record(tmp_path / "run" / ".hydra", saved_text, {"model._target_": "my_plugs.Family"})


def _resume(record: Path, saved: list[str], typed: tuple[str, ...] = ()) -> None:
    check_resumed_overrides(
        "pretrain",
        ["debug=tiny", *saved],
        [*typed, f"hydra.run.dir={record.parent}", "trainer.resume=auto"],
        record / "overrides.yaml",
        record / "config.yaml",
        config_dir(),
    )


REFUSED_IN_OVERRIDES = {
    "callback": (
        ["+hydra.callbacks.x._target_=shutil.copyfile", "+hydra.callbacks.x._args_=[a,b]"],
        "+hydra.callbacks.x._target_=shutil.copyfile",
    ),
    "logging group": (["hydra/job_logging=disabled"], "hydra/job_logging=disabled"),
    "package search path": (["hydra.searchpath=[pkg://this]"], "pkg://this"),
    "environment resolver": (["trainer.max_time=${oc.env:HOME}"], "trainer.max_time"),
    "target outside a plug": (["+optim._target_=shutil.rmtree"], "optim._target_"),
    "another plug": (["model._target_=other_plugs.Family"], "not the plug the run was trained with"),
    "standard library plug": (["model._target_=this.Foo"], "standard library"),
}


@pytest.mark.parametrize("case", REFUSED_IN_OVERRIDES)
def test_what_would_run_code_in_saved_overrides_is_refused_by_resume(case, run_record, capsys):
    saved, named = REFUSED_IN_OVERRIDES[case]
    with pytest.raises(UserError) as refused:
        _resume(run_record, saved)
    assert named in str(refused.value) and str(run_record / "overrides.yaml") in str(refused.value)
    assert "Beautiful is better" not in capsys.readouterr().out


def test_resume_accepts_the_plug_the_run_was_trained_with_and_what_the_user_types(run_record):
    _resume(run_record, ["model._target_=my_plugs.Family", "trainer.max_steps=4"])
    _resume(run_record, ["hydra.searchpath=[file:///somewhere]"])
    _resume(run_record, [], ("model._target_=typed_plugs.Family", "+hydra.callbacks.mine._target_=my.Callback"))


def test_a_mistyped_key_given_to_resume_is_named_as_a_config_error(run_record):
    with pytest.raises(
        UserError,
        match=r"invalid configuration for `lmtrain pretrain` \(replaying .*overrides.yaml\): "
        r"Could not override 'trainer.max_stepz'",
    ):
        _resume(run_record, [], ("trainer.max_stepz=5",))
