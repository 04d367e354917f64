"""Preparation split across processes (``data.num_proc``): the same example stores, byte for byte, as one
process gives, and a preparation killed half-way leaves nothing that is read as complete."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lmtrain.data import pretraining
from lmtrain.data.corpus import bundled_file
from lmtrain.data.pretraining import prepare_pretraining_data
from tests.conftest import compose_config, objective_plug

REPO = Path(__file__).resolve().parents[2]


def _news(folder: Path) -> Path:
    """The first 100 articles of the bundled news corpus (120 kB of real text)."""
    path = folder / "news.txt"
    if not path.exists():
        path.write_text("".join(bundled_file("lee_background.cor").read_text().splitlines(keepends=True)[:100]))
    return path


def _overrides(folder: Path, model: str, num_proc: int) -> list[str]:
    return [
        "debug=tiny",
        f"model={model}",
        "data=text",
        f"data.train_files=[{_news(folder)}]",
        f"data.cache_dir={folder / 'cache'}",
        f"data.num_proc={num_proc}",
    ]


def _prepare(folder: Path, model: str, num_proc: int):
    cfg = compose_config("pretrain", _overrides(folder, model, num_proc))
    return prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("model", ["bert", "roberta", "gpt"])  # NSP pairs, packed sentences, the token stream
def test_one_and_two_processes_give_byte_identical_stores(tmp_path, monkeypatch, caplog, model):
    monkeypatch.setattr(pretraining, "CHUNK_CHARS", 12_000)  # about 10 chunks
    folders = {n: tmp_path / f"proc{n}" for n in (1, 2)}
    data = {}
    for num_proc, folder in folders.items():
        folder.mkdir()
        if num_proc == 2:  # the same tokenizer (training one twice may number rare tokens differently)
            shutil.copytree(folders[1] / "cache" / "tokenizers", folder / "cache" / "tokenizers")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="lmtrain.data"):
            data[num_proc] = _prepare(folder, model, num_proc)
        workers = {int(pid) for pid in re.findall(r"process \d+ \(pid (\d+)\)", caplog.text)}
        assert workers and (workers == {os.getpid()}) == (num_proc == 1), caplog.text  # who did the work
        assert re.search(r"prepared \d+ chunks \(\d+ examples\) in [\d.]+ s", caplog.text)

    one, two = data[1], data[2]
    assert len(one.train.shards) > 5 and len(one.eval.shards) > 1  # several chunks, so the split mattered
    assert _files(folders[1] / "cache" / "examples") == _files(folders[2] / "cache" / "examples")
    assert one.train.content_digest() == two.train.content_digest()
    assert one.eval.content_digest() == two.eval.content_digest()
    for i in (0, len(one.train) // 2, len(one.train) - 1):  # the index spans the shards in chunk order
        assert two.train[i].keys() == one.train[i].keys()
        assert all(np.array_equal(two.train[i][k], one.train[i][k]) for k in one.train[i])


def test_a_preparation_killed_half_way_leaves_nothing_read_as_complete(tmp_path, monkeypatch):
    chunk_chars = 4000  # about 30 chunks
    script = (
        "import sys; sys.path[:0] = sys.argv[1:3]\n"
        "from lmtrain.data import pretraining\n"
        "from tests.conftest import compose_config, objective_plug\n"
        f"pretraining.CHUNK_CHARS = {chunk_chars}\n"
        "cfg = compose_config('pretrain', sys.argv[3:])\n"
        "pretraining.prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))\n"
    )
    output = tmp_path / "output.txt"
    with open(output, "w") as out:
        job = subprocess.Popen(
            [sys.executable, "-c", script, str(REPO / "src"), str(REPO), *_overrides(tmp_path, "bert", 2)],
            start_new_session=True,
            stdout=out,
            stderr=out,
        )
    examples = tmp_path / "cache" / "examples"
    try:
        deadline = time.monotonic() + 300
        while not list(examples.glob(".tmp-*/train/chunk-*/meta.json")):  # the first shard is written
            assert job.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the preparation and its worker processes
        job.wait()
    assert job.returncode == -signal.SIGKILL
    entries = [p.name for p in examples.iterdir() if p.is_dir()]
    assert len(entries) == 1 and entries[0].startswith(".tmp-")  # only the unfinished folder, never read

    monkeypatch.setattr(pretraining, "CHUNK_CHARS", chunk_chars)
    again = _prepare(tmp_path, "bert", 1)
    assert not again.from_cache and len(again.train) > 0
    assert [p.name for p in examples.iterdir() if p.is_dir()] == [again.train.path.parent.name]  # the leftover went


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for a parent that never reaps it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_workers_end_when_the_preparation_is_killed(tmp_path):
    """kill -9 of the process that prepares with data.num_proc=2: its workers and the resource tracker end too."""
    script = (
        "import sys; sys.path[:0] = sys.argv[1:3]\n"
        "from lmtrain.data import pretraining\n"
        "from tests.conftest import compose_config, objective_plug\n"
        "pretraining.CHUNK_CHARS = 4000\n"
        "cfg = compose_config('pretrain', sys.argv[3:])\n"
        "pretraining.prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))\n"
    )
    output = tmp_path / "output.txt"
    with open(output, "w") as out:
        job = subprocess.Popen(
            [sys.executable, "-c", script, str(REPO / "src"), str(REPO), *_overrides(tmp_path, "bert", 2)],
            stdout=out,
            stderr=out,
        )
    helpers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "cache" / "examples").glob(".tmp-*/train/chunk-*/meta.json")):  # workers work
            assert job.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.02)
        helpers = _children(job.pid)  # the 2 workers and the resource tracker
        job.send_signal(signal.SIGKILL)  # the preparation alone, as the OOM killer or kill -9 would
        job.wait()
        assert len(helpers) == 3, helpers
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in helpers if _running(pid)], "processes left running after their parent was killed"
    finally:
        for pid in helpers:  # on failure, end what the test started
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
