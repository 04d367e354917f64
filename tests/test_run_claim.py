"""A run directory is the user's property: refused overwrites, one process at a time, checked resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmtrain.errors import UserError
from lmtrain.run_folder.claim import claim_run_dir, latest_unfinished_run
from lmtrain.run_folder.lock import RunLock
from tests.conftest import TINY, compose_config, run_cli, text_data, wait_for_metrics, write_corpus


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("claim")
    write_corpus(path / "corpus.txt", n_docs=40)
    return path


def _args(workdir: Path, *extra: str) -> list[str]:
    return [
        *TINY,
        *text_data(workdir),
        "trainer.max_steps=4",
        "trainer.save_every=2",
        "trainer.eval_every=0",
        "trainer.log_every=1",
        *extra,
    ]


@pytest.fixture(scope="module")
def finished(workdir) -> Path:
    """A finished tiny BERT run made through the CLI (copied by each test that changes it)."""
    run_dir = workdir / "finished"
    out = run_cli("pretrain", *_args(workdir), f"hydra.run.dir={run_dir}", cwd=workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    return run_dir


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != ".lock" and p.suffix != ".log"
    }


def test_a_finished_run_is_refused_and_left_as_it_was(workdir, finished):
    before = _snapshot(finished)
    out = run_cli("pretrain", *_args(workdir), f"hydra.run.dir={finished}", cwd=workdir)
    assert out.returncode == 2
    assert "already holds a finished run" in out.stderr and f"lmtrain resume {finished}" in out.stderr
    assert "trainer.overwrite=true" in out.stderr and "Traceback" not in out.stderr
    assert _snapshot(finished) == before


def test_overwrite_replaces_the_old_run_without_mixing(workdir, finished):
    run_dir = workdir / "overwritten"
    shutil.copytree(finished, run_dir, symlinks=True)
    (run_dir / "notes.txt").write_text("from the old run")
    out = run_cli(
        "pretrain",
        *_args(workdir, "trainer.max_steps=2", "trainer.overwrite=true"),
        f"hydra.run.dir={run_dir}",
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) == 2  # only the new run's events
    assert not (run_dir / "checkpoints" / "step-4").exists()
    assert (run_dir / "notes.txt").read_text() == "from the old run"  # only lmtrain's own files go
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 2


def test_an_incompatible_resume_changes_nothing(workdir, finished):
    before = _snapshot(finished)
    out = run_cli(
        "pretrain", "model=gpt", *_args(workdir), f"hydra.run.dir={finished}", "trainer.resume=auto", cwd=workdir
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cannot continue" in out.stderr and "model.name: 'bert' -> 'gpt'" in out.stderr
    assert _snapshot(finished) == before


def test_resume_with_another_model_size_is_refused_before_any_work(workdir, finished):
    cfg = compose_config("pretrain", [*_args(workdir), "model.d_model=64", "trainer.resume=auto"])
    with pytest.raises(UserError, match=r"model.d_model: 32 -> 64"):
        claim_run_dir(cfg, "pretrain", finished)
    assert RunLock(finished).acquire().held  # a refused claim leaves no lock behind


def test_lmtrain_resume_extends_a_finished_run_continuing_its_schedule(workdir, finished):
    run_dir = workdir / "extended"
    shutil.copytree(finished, run_dir, symlinks=True)
    original = (run_dir / ".hydra" / "config.yaml").read_text()
    out = run_cli("resume", str(run_dir), "trainer.max_steps=6", cwd=workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the learning-rate schedule continues to the new horizon" in out.stdout + out.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_text() == original  # the original record stays
    resumed = yaml.safe_load((run_dir / ".hydra" / "resume-1" / "config.yaml").read_text())
    assert resumed["trainer"]["max_steps"] == 6 and resumed["optim"]["decay_steps"] is None  # what was typed
    overrides = yaml.safe_load((run_dir / ".hydra" / "resume-1" / "overrides.yaml").read_text())
    assert "trainer.max_steps=6" in overrides and "trainer.max_steps=4" not in overrides
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = {e["step"]: e["train/lr"] for e in events if "train/lr" in e}
    assert lrs[4] == 0.0 and lrs[5] > 0.0 and lrs[6] == 0.0  # decays again, to the new horizon
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 6


def test_resume_without_a_run_directory_names_the_run_to_continue(workdir):
    outputs = workdir / "outputs" / "pretrain"
    run_dir = outputs / "2026-01-01_00-00-00_bert"
    stop = run_cli("pretrain", *_args(workdir, "trainer.max_steps=2"), f"hydra.run.dir={run_dir}", cwd=workdir)
    assert stop.returncode == 0, stop.stderr[-2000:]
    (run_dir / "summary.json").unlink()  # as if it had been stopped before the end
    assert latest_unfinished_run(outputs, [*_args(workdir, "trainer.max_steps=2"), "trainer.resume=auto"]) == run_dir
    out = run_cli("pretrain", *_args(workdir, "trainer.max_steps=2"), "trainer.resume=auto", cwd=workdir)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"lmtrain resume {run_dir}" in out.stderr


def test_resume_command_errors_name_the_directory(workdir):
    missing = run_cli("resume", str(workdir / "nowhere"), cwd=workdir)
    assert missing.returncode == 2 and "no such run directory" in missing.stderr
    usage = run_cli("resume", cwd=workdir)
    assert usage.returncode == 2 and "usage: lmtrain resume RUN_DIR" in usage.stderr


HOLD_LOCK = """
import sys, time
from lmtrain.run_folder.lock import RunLock
RunLock(sys.argv[1]).acquire("lmtrain pretrain")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_directory(workdir, tmp_path):
    run_dir = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        out = run_cli("pretrain", *_args(workdir), f"hydra.run.dir={run_dir}", cwd=workdir)
        assert out.returncode == 2 and f"in use by process {holder.pid}" in out.stderr, out.stderr[-2000:]
        assert not (run_dir / "metrics.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = RunLock(run_dir).acquire()  # the kernel dropped the dead holder's lock
    assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_orphan_saves_are_removed_at_the_next_start(workdir, finished, tmp_path):
    run_dir = tmp_path / "orphans"
    shutil.copytree(finished, run_dir, symlinks=True)
    orphan = run_dir / "checkpoints" / ".tmp-step-6-abc123"
    orphan.mkdir()
    (orphan / "model.safetensors").write_bytes(b"half")
    cfg = compose_config("pretrain", [*_args(workdir), "trainer.resume=auto"])
    claim = claim_run_dir(cfg, "pretrain", run_dir)
    claim.release()
    assert not orphan.exists() and (run_dir / "checkpoints" / "step-4").is_dir()


def test_sigterm_saves_and_prints_how_to_continue(workdir, tmp_path):
    run_dir = tmp_path / "preempted"
    args = [
        sys.executable,
        "-m",
        "lmtrain",
        "pretrain",
        *_args(workdir, "trainer.max_steps=100000", "trainer.save_every=0"),
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_metrics(run_dir)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Stopped by SIGTERM" in err and f"lmtrain resume {run_dir}" in err and "Traceback" not in err
    assert (run_dir / "checkpoints" / "last" / "trainer_state.pt").exists()


def test_workers_restarted_by_torchrun_continue_the_run(workdir, finished, tmp_path, monkeypatch):
    run_dir = tmp_path / "restarted"
    shutil.copytree(finished, run_dir, symlinks=True)
    (run_dir / "summary.json").unlink()  # a job that died before its end
    cfg = compose_config("pretrain", _args(workdir))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    claim = claim_run_dir(cfg, "pretrain", run_dir)  # no trainer.resume given: not refused as occupied
    claim.release()
    assert claim.resuming and cfg.trainer.resume == "auto"
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")  # the first attempt is a new run as usual
    with pytest.raises(UserError, match="already holds a run's checkpoints"):
        claim_run_dir(compose_config("pretrain", _args(workdir)), "pretrain", run_dir)


def _tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a link's target, a folder as "dir"."""
    return {
        str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def test_a_failed_attempt_and_the_next_run_touch_only_their_own_files(workdir, tmp_path):
    folder, outside = tmp_path / "project", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_text("not the run's")
    (folder / "server.log").write_text("the user's server log\n")
    (folder / "linked.log").symlink_to(outside)
    (folder / "thesis.txt").write_text("precious")
    users = _tree(folder)
    # an attempt that fails after it has written its tokenizer (the preflight finds no such metric)
    failed = run_cli(
        "pretrain",
        *_args(workdir, "trainer.eval_every=2", "trainer.monitor=eval/nope"),
        f"hydra.run.dir={folder}",
        cwd=workdir,
    )
    assert failed.returncode == 2 and "trainer.monitor=eval/nope" in failed.stderr, failed.stderr[-2000:]
    assert (folder / "tokenizer.json").exists()  # its work stays until a new run replaces it
    out = run_cli("pretrain", *_args(workdir, "trainer.max_steps=2"), f"hydra.run.dir={folder}", cwd=workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {k: v for k, v in _tree(folder).items() if k in users} == users  # every file of the user's as it was
    assert outside.read_text() == "not the run's"
    assert json.loads((folder / "summary.json").read_text())["steps"] == 2


def test_a_name_the_run_writes_taken_by_a_users_file_is_refused_and_nothing_changes(workdir, tmp_path):
    folder = tmp_path / "project"
    (folder / "tb").mkdir(parents=True)
    (folder / "tb" / "events.out").write_text("the user's curves")
    (folder / "tokenizer.json").write_text('{"the user": "tokenizer"}')
    (folder / "server.log").write_text("log\n")
    before = _tree(folder)
    out = run_cli(
        "pretrain", *_args(workdir, "trainer.loggers=[jsonl,tensorboard]"), f"hydra.run.dir={folder}", cwd=workdir
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{folder / 'tokenizer.json'}" in out.stderr and f"{folder / 'tb'}" in out.stderr
    assert "lmtrain did not write" in out.stderr
    assert _tree(folder) == before  # not even a .lock


def test_overwrite_removes_only_what_the_earlier_run_wrote(workdir, finished, tmp_path):
    run_dir = tmp_path / "overwrite"
    shutil.copytree(finished, run_dir, symlinks=True)
    (run_dir / "tb").mkdir()  # the user's own TensorBoard folder, in a run that logged none
    (run_dir / "tb" / "events.out").write_text("the user's")
    (run_dir / "mine.log").write_text("the user's log\n")
    out = run_cli(
        "pretrain",
        *_args(workdir, "trainer.max_steps=2", "trainer.overwrite=true"),
        f"hydra.run.dir={run_dir}",
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run_dir / "tb" / "events.out").read_text() == "the user's"
    assert (run_dir / "mine.log").read_text() == "the user's log\n"
    assert not (run_dir / "checkpoints" / "step-4").exists()


def test_a_link_where_the_run_writes_is_refused_and_its_target_untouched(workdir, finished, tmp_path):
    important = tmp_path / "important.txt"
    important.write_text("keep me")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "pretrain.log").symlink_to(important)
    out = run_cli("pretrain", *_args(workdir), f"hydra.run.dir={fresh}", cwd=workdir)
    assert out.returncode == 2 and f"{fresh / 'pretrain.log'}" in out.stderr and "symbolic link" in out.stderr
    run_dir = tmp_path / "linked"  # a finished run whose metrics.jsonl was swapped for a link
    shutil.copytree(finished, run_dir, symlinks=True)
    (run_dir / "metrics.jsonl").unlink()
    (run_dir / "metrics.jsonl").symlink_to(important)
    out = run_cli("resume", str(run_dir), "trainer.max_steps=6", cwd=workdir)
    assert out.returncode == 2 and f"{run_dir / 'metrics.jsonl'}" in out.stderr and "Traceback" not in out.stderr
    assert important.read_text() == "keep me"


def test_a_lock_that_is_a_link_is_refused_not_written_through(tmp_path):
    important = tmp_path / "important.txt"
    important.write_text("keep me")
    run_dir = tmp_path / "L"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(important)
    with pytest.raises(UserError, match=r"\.lock is a symbolic link"):
        RunLock(run_dir).acquire()
    (run_dir / ".lock").unlink()
    (run_dir / ".lock").write_text("another program's lock")
    with pytest.raises(UserError, match="not a lock file of lmtrain"):
        RunLock(run_dir).acquire()
    assert important.read_text() == "keep me" and (run_dir / ".lock").read_text() == "another program's lock"
