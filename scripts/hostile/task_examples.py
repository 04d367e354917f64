"""Fine-tuning examples kept in the data cache (``<data.cache_dir>/task-examples``): a damaged entry, a link
planted in one, two runs at once, a training file edited in place, a folder in the way, what a killed write left,
a task plug edited between runs, and the key where a task does not read it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, last_line, refused

USED = "using cached examples"


def _finetune(ws: Workspace, name: str, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    """A two-step NER run on the bundled data from the finished tiny BERT, its examples cached in ``cache``."""
    keys = ["trainer.max_steps=2", "trainer.eval_every=0", "trainer.save_every=0", "trainer.progress=false"]
    return ws.lmtrain(
        "finetune",
        "task=ner",
        f"init={ws.root / 'finished'}",
        *keys,
        f"data.cache_dir={cache}",
        *extra,
        f"hydra.run.dir={ws.root / name}",
    )


def _log(ws: Workspace, name: str) -> str:
    path = ws.root / name / "finetune.log"
    return path.read_text() if path.is_file() else ""


def _losses(ws: Workspace, name: str) -> list[tuple[int, float]]:
    path = ws.root / name / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [(r["step"], r[k]) for r in rows for k in r if k.endswith("loss")]


def _entries(cache: Path) -> list[Path]:
    folder = cache / "task-examples"
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


def _first_entry(ws: Workspace, name: str, cache: Path) -> tuple[Path | None, Outcome]:
    """A first run that fills ``cache`` with one entry: (the entry, or None with the outcome that says why not)."""
    first = _finetune(ws, name, cache)
    entries = _entries(cache)
    if first.returncode != 0 or len(entries) != 1:
        return None, Outcome(first.returncode, f"the first run made {len(entries)} entries; {last_line(first)}", False)
    return entries[0], Outcome(0, "", True)


def damaged_entry(ws: Workspace) -> Outcome:
    cache = ws.root / "tx-damaged-cache"
    entry, failed = _first_entry(ws, "tx-damaged-1", cache)
    if entry is None:
        return failed
    data = bytearray((entry / "train.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (entry / "train.npz").write_bytes(bytes(data))
    second = _finetune(ws, "tx-damaged-2", cache)
    said = "are damaged" in _log(ws, "tx-damaged-2") and USED not in _log(ws, "tx-damaged-2")
    alike = _losses(ws, "tx-damaged-1") == _losses(ws, "tx-damaged-2") != []
    held = second.returncode == 0 and said and alike
    return Outcome(second.returncode, f"said damaged: {said}; the same losses as the first run: {alike}", held)


def linked_entry_file(ws: Workspace) -> Outcome:
    cache, outside = ws.root / "tx-link-cache", ws.root / "tx-link-target.txt"
    entry, failed = _first_entry(ws, "tx-link-1", cache)
    if entry is None:
        return failed
    outside.write_text("a file of the user's\n")
    (entry / "entry.json").unlink()
    (entry / "entry.json").symlink_to(outside)
    second = _finetune(ws, "tx-link-2", cache)
    intact = outside.read_text() == "a file of the user's\n"
    rewritten = (entry / "entry.json").is_file() and not (entry / "entry.json").is_symlink()
    held = second.returncode == 0 and intact and rewritten and USED not in _log(ws, "tx-link-2")
    return Outcome(second.returncode, f"linked file intact: {intact}; entry written anew: {rewritten}", held)


def two_runs_at_once(ws: Workspace) -> Outcome:
    cache = ws.root / "tx-twice-cache"
    keys = ["trainer.max_steps=2", "trainer.eval_every=0", "trainer.save_every=0", "trainer.progress=false"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lmtrain",
                "finetune",
                "task=ner",
                f"init={ws.root / 'finished'}",
                *keys,
                f"data.cache_dir={cache}",
                f"hydra.run.dir={ws.root / f'tx-twice-{i}'}",
            ],
            cwd=ws.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in (1, 2)
    ]
    codes = [proc.wait(timeout=600) for proc in procs]
    read = [USED in _log(ws, f"tx-twice-{i}") for i in (1, 2)]
    leftovers = [p.name for p in (cache / "task-examples").iterdir() if p.name.startswith(".tmp")]
    held = codes == [0, 0] and sorted(read) == [False, True] and len(_entries(cache)) == 1 and not leftovers
    message = f"exit codes {codes}; read from the cache: {read}; entries {len(_entries(cache))}; leftovers {leftovers}"
    return Outcome(max(codes), message, held)


def file_edited_in_place(ws: Workspace) -> Outcome:
    cache = ws.root / "tx-edit-cache"
    train = ws.root / "tx-edit-train.conll"
    sentences = ["Alice B-PER\nvisited O\nParis B-LOC\n. O\n", "Bob B-PER\nleft O\nOslo B-LOC\n. O\n"] * 40
    train.write_text("\n".join(sentences))
    stat = train.stat()
    first = _finetune(ws, "tx-edit-1", cache, f"data.train_file={train}")
    train.write_text("\n".join(sentences).replace("Oslo B-LOC", "Oslo B-PER", 1))  # the same size
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    second = _finetune(ws, "tx-edit-2", cache, f"data.train_file={train}")
    fresh = USED not in _log(ws, "tx-edit-2") and len(_entries(cache)) == 2
    held = first.returncode == 0 and second.returncode == 0 and fresh and train.stat().st_size == stat.st_size
    return Outcome(second.returncode, f"encoded anew, not read from the old entry: {fresh}", held)


def folder_in_the_way(ws: Workspace) -> Outcome:
    cache = ws.root / "tx-file-cache"
    cache.mkdir()
    (cache / "task-examples").write_text("a file of the user's\n")
    proc = _finetune(ws, "tx-file-run", cache)
    said = "cannot lock" in _log(ws, "tx-file-run")
    intact = (cache / "task-examples").read_text() == "a file of the user's\n"
    held = proc.returncode == 0 and said and intact
    return Outcome(proc.returncode, f"said: {said}; the file intact: {intact}; {last_line(proc)}", held)


def retrieval_cache_dir(ws: Workspace) -> Outcome:
    out = ws.root / "tx-retrieval"
    cache = ws.root / "tx-retrieval-cache"
    proc = ws.lmtrain("finetune", "task=retrieval", *TINY, f"data.cache_dir={cache}", f"hydra.run.dir={out}")
    return refused(proc, "data.cache_dir", intact=not out.exists() and not cache.exists())


def killed_writer_left_a_folder(ws: Workspace) -> Outcome:
    cache = ws.root / "tx-killed-cache"
    entry, failed = _first_entry(ws, "tx-killed-1", cache)
    if entry is None:
        return failed
    # what `kill -9` during the write leaves: the entry's temporary folder, half written, and no entry
    leftover = entry.parent / f".tmp-{entry.name}-killed"
    entry.rename(leftover)
    (leftover / "train.npz").write_bytes((leftover / "train.npz").read_bytes()[:100])
    second = _finetune(ws, "tx-killed-2", cache)
    rewritten = len(_entries(cache)) == 1 and (entry / "entry.json").is_file()
    held = (
        second.returncode == 0
        and not leftover.exists()
        and rewritten
        and _losses(ws, "tx-killed-1") == _losses(ws, "tx-killed-2")
    )
    message = f"leftover removed: {not leftover.exists()}; entry written again: {rewritten}; {last_line(second)}"
    return Outcome(second.returncode, message, held)


def edited_task_plug(ws: Workspace) -> Outcome:
    example = Path(__file__).resolve().parents[2] / "examples" / "sentence_similarity"
    copy = ws.root / "tx-plug"
    shutil.copytree(example, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    pairs = ws.root / "tx-plug-pairs.tsv"
    rows = ["a man plays the guitar\ta man plays a guitar\t4.8", "a cat sleeps\tthe stock market fell\t0.2"] * 30
    pairs.write_text("\n".join(rows) + "\n")
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(copy)}
    keys = ["task=similarity", f"hydra.searchpath=[file://{copy / 'configs'}]", f"init={ws.root / 'finished'}"]
    keys += [f"data.train_file={pairs}", f"data.cache_dir={ws.root / 'tx-plug-cache'}", "trainer.max_steps=2"]
    keys += ["trainer.eval_every=0", "trainer.save_every=0", "trainer.progress=false"]
    codes = []
    for name in ("tx-plug-1", "tx-plug-2"):
        if name == "tx-plug-2":  # the plug's author edits its encoding between the runs
            task = copy / "sentence_similarity" / "task.py"
            task.write_text(task.read_text() + "\n# the encoding changed\n")
        proc = subprocess.run(
            [sys.executable, "-m", "lmtrain", "finetune", *keys, f"hydra.run.dir={ws.root / name}"],
            cwd=ws.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        codes.append(proc.returncode)
    fresh = USED not in _log(ws, "tx-plug-2") and len(_entries(ws.root / "tx-plug-cache")) == 2
    return Outcome(max(codes), f"exit codes {codes}; encoded again: {fresh}", codes == [0, 0] and fresh)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "cached examples with a flipped byte (said, encoded again, the same run)": damaged_entry,
    "cached entry.json a link to a user's file (not followed, written anew)": linked_entry_file,
    "two fine-tuning runs at once on one cache (one encodes, one reads)": two_runs_at_once,
    "training file edited in place, same size and time (a new entry)": file_edited_in_place,
    "a file where the task-examples folder goes (said; the run goes on)": folder_in_the_way,
    "a killed write's half-written folder (removed; the entry written again)": killed_writer_left_a_folder,
    "a task plug edited between two runs (its examples encoded again)": edited_task_plug,
    "data.cache_dir with task=retrieval (refused: never read)": retrieval_cache_dir,
}
