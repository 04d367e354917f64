"""Re-running a run's saved config with changes, experiment presets, and a user's own config folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, run_cli, text_data, write_corpus


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("rerun")
    write_corpus(workdir / "corpus.txt", n_docs=30)
    out = run_cli(
        "pretrain",
        *TINY,
        *text_data(workdir),
        "trainer.max_steps=2",
        "trainer.eval_every=0",
        f"hydra.run.dir={workdir / 'first'}",
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return workdir / "first"


def test_a_saved_config_reruns_with_changes_in_the_usual_folder(saved_run, tmp_path):
    out = run_cli(
        "pretrain",
        "--config-dir",
        str(saved_run / ".hydra"),
        "--config-name",
        "config",
        "trainer.max_steps=3",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "pretrain").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3
    assert "name: pretrain" in (run_dir / ".hydra" / "hydra.yaml").read_text()  # `lmtrain runs` / `resume` know it


def test_a_sweep_over_a_saved_config_keeps_its_summary(saved_run, tmp_path):
    out = run_cli(
        "pretrain",
        "--config-dir",
        str(saved_run / ".hydra"),
        "--config-name",
        "config",
        "-m",
        "optim.lr=1e-3,2e-3",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (sweep,) = (tmp_path / "multirun" / "pretrain").iterdir()
    assert (sweep / "sweep_summary.csv").is_file() and len((sweep / "sweep_summary.csv").read_text().splitlines()) == 3


def test_a_mistyped_key_in_a_saved_config_is_named(saved_run, tmp_path):
    folder = tmp_path / "edited"
    folder.mkdir()
    text = (saved_run / ".hydra" / "config.yaml").read_text().replace("max_steps: 2", "max_steps: two")
    (folder / "config.yaml").write_text(text)
    out = run_cli("pretrain", "--config-dir", str(folder), "--config-name", "config", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "does not fit `lmtrain pretrain`" in out.stderr and "max_steps" in out.stderr


def test_experiment_presets_and_a_users_own_folder(tmp_path):
    shipped = run_cli("finetune", "experiment=conll2003_ner", "--cfg", "job", cwd=tmp_path)
    assert shipped.returncode == 0 and "scheme: iob1" in shipped.stdout and "eval_at_start: true" in shipped.stdout
    mine = tmp_path / "my_configs" / "experiment"
    mine.mkdir(parents=True)
    (mine / "quick_gpt.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: gpt\ntrainer:\n  max_steps: 123\n"
    )
    out = run_cli(
        "pretrain", "--config-dir", str(tmp_path / "my_configs"), "experiment=quick_gpt", "--cfg", "job", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "max_steps: 123" in out.stdout and "name: gpt" in out.stdout


def _copy_file_callback(source: Path, marker: Path) -> dict:
    """A Hydra callback that would copy ``source`` to ``marker`` if Hydra ran it."""
    return {"_target_": "shutil.copyfile", "_args_": [str(source), str(marker)]}


def test_a_callback_in_a_saved_config_does_not_run(saved_run, tmp_path):
    folder = tmp_path / "shared" / ".hydra"
    folder.mkdir(parents=True)
    config = yaml.safe_load((saved_run / ".hydra" / "config.yaml").read_text())
    (tmp_path / "secret.txt").write_text("secret")
    config["hydra"] = {"callbacks": {"x": _copy_file_callback(tmp_path / "secret.txt", tmp_path / "marker")}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    out = run_cli("pretrain", "--config-dir", str(folder), "--config-name", "config", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "hydra.callbacks.x" in out.stderr and str(folder / "config.yaml") in out.stderr
    assert not (tmp_path / "marker").exists() and not (tmp_path / "outputs").exists()


def test_a_callback_appended_to_a_runs_overrides_does_not_run_on_resume(saved_run, tmp_path):
    run_dir = tmp_path / "shared"
    shutil.copytree(saved_run, run_dir, symlinks=True)
    (tmp_path / "secret.txt").write_text("secret")
    overrides = run_dir / ".hydra" / "overrides.yaml"
    callback = _copy_file_callback(tmp_path / "secret.txt", tmp_path / "marker")
    saved = yaml.safe_load(overrides.read_text()) + [
        f"+hydra.callbacks.x._target_={callback['_target_']}",
        f"+hydra.callbacks.x._args_=[{','.join(callback['_args_'])}]",
    ]
    overrides.write_text(yaml.safe_dump(saved))
    out = run_cli("resume", str(run_dir), "trainer.max_steps=3", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "+hydra.callbacks.x._target_=shutil.copyfile" in out.stderr and str(overrides) in out.stderr
    assert not (tmp_path / "marker").exists() and not (run_dir / ".hydra" / "resume-1").exists()
