"""Run folders are the user's property: only recorded files are removed, nothing through a link, no stray folders."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, refused


def _tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a link's target, a folder as "dir"."""
    return {
        str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def _users_folder(ws: Workspace, name: str) -> tuple[Path, Path]:
    """A folder of the user's own (a log, a link to a file outside, notes) and the file the link points at."""
    folder, outside = ws.root / name, ws.root / f"{name}-outside.txt"
    folder.mkdir()
    outside.write_text("outside the folder")
    (folder / "server.log").write_text("the user's server log\n")
    (folder / "linked.log").symlink_to(outside)
    (folder / "notes.txt").write_text("precious")
    return folder, outside


def failed_attempt_then_good_run(ws: Workspace) -> Outcome:
    folder, outside = _users_folder(ws, "users-project")
    before = _tree(folder)
    failed = ws.lmtrain(
        "pretrain", *TINY, *ws.data, "trainer.eval_every=2", "trainer.monitor=eval/nope", f"hydra.run.dir={folder}"
    )
    good = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={folder}")
    kept = {
        k: v for k, v in _tree(folder).items() if k in before
    } == before and outside.read_text() == "outside the folder"
    said = (
        f"attempt exit {failed.returncode}, then exit {good.returncode}; user's files {'kept' if kept else 'CHANGED'}"
    )
    return Outcome(good.returncode, said, failed.returncode == 2 and good.returncode == 0 and kept)


def output_name_taken(ws: Workspace) -> Outcome:
    folder, _ = _users_folder(ws, "taken")
    (folder / "tokenizer.json").write_text('{"the user": "tokenizer"}')
    (folder / "tb").mkdir()
    (folder / "tb" / "events").write_text("the user's curves")
    before = _tree(folder)
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.loggers=[jsonl,tensorboard]", f"hydra.run.dir={folder}")
    return refused(proc, f"{folder / 'tokenizer.json'}", _tree(folder) == before)


def overwrite_keeps_users_entries(ws: Workspace) -> Outcome:
    run = ws.fresh_run("overwrite-users")
    (run / "tb").mkdir()
    (run / "tb" / "events").write_text("the user's curves")
    (run / "mine.log").write_text("the user's log\n")
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.overwrite=true", f"hydra.run.dir={run}")
    kept = (run / "tb" / "events").read_text() == "the user's curves" and (run / "mine.log").read_text() != ""
    return Outcome(
        proc.returncode,
        f"overwrite exit {proc.returncode}; tb/ and mine.log {'kept' if kept else 'LOST'}",
        proc.returncode == 0 and kept,
    )


def lock_is_a_link(ws: Workspace) -> Outcome:
    folder, important = ws.root / "L", ws.root / "important.txt"
    folder.mkdir()
    important.write_text("keep me")
    (folder / ".lock").symlink_to(important)
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={folder}")
    return refused(proc, ".lock is a symbolic link", important.read_text() == "keep me")


def metrics_is_a_link(ws: Workspace) -> Outcome:
    run, important = ws.fresh_run("linked-metrics"), ws.root / "important-metrics.txt"
    important.write_text("keep me")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(important)
    proc = ws.lmtrain("resume", str(run), "trainer.max_steps=6")
    return refused(proc, "symbolic link", important.read_text() == "keep me")


def run_dir_is_a_file(ws: Workspace) -> Outcome:
    path = ws.root / "a-file"
    path.write_text("the user's")
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={path}")
    return refused(proc, "is a file, not a folder", path.read_text() == "the user's")


def run_dir_under_a_file(ws: Workspace) -> Outcome:
    path = ws.root / "another-file"
    path.write_text("the user's")
    proc = ws.lmtrain("generate", "ckpt=x", f"hydra.run.dir={path / 'run'}")
    return refused(proc, "cannot create the run folder", path.read_text() == "the user's")


def mistakes_leave_no_run_folders(ws: Workspace) -> Outcome:
    cwd = ws.root / "mistakes"
    cwd.mkdir()
    shutil.copytree(ws.root / "cache", cwd / "cache")
    data = [f"data.cache_dir={cwd / 'cache'}"]
    mistakes = [
        ("generate",),
        ("pretrain", *TINY, *data, "data=text", "data.train_files=[missing.txt]"),
        ("embed", "method=load", "path=missing.txt"),
        ("evaluate",),
    ]
    codes = [Workspace(cwd).lmtrain(*args).returncode for args in mistakes]
    left = (
        [p for p in (cwd / "outputs").rglob("*") if p.is_file() or p.name[:1].isdigit()]
        if (cwd / "outputs").exists()
        else []
    )
    return Outcome(max(codes), f"exit codes {codes}; run folders left: {len(left)}", set(codes) == {2} and not left)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "1 failed attempt, then a run: user's files kept": failed_attempt_then_good_run,
    "1 output name taken by a user's file": output_name_taken,
    "1 overwrite keeps the user's tb/ and logs": overwrite_keeps_users_entries,
    "2 .lock is a link": lock_is_a_link,
    "2 metrics.jsonl is a link": metrics_is_a_link,
    "3 hydra.run.dir is a file": run_dir_is_a_file,
    "3 hydra.run.dir under a file": run_dir_under_a_file,
    "25.10 mistakes leave no run folders": mistakes_leave_no_run_folders,
}
