"""Data preparation: a word of a million characters, kill -9 with worker processes, ten thousand files,
dataset folders that hold a loading script or nothing, a file-size limit while the cache is written, and a
tokenizer file saved to pad and cut every text."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, last_line, refused

_SYLLABLES = ("ka", "lo", "mi", "ter", "san", "do", "ri", "ven", "pa", "sto", "al", "ne", "gor", "u", "bel", "tis")


def _documents(n_docs: int, seed: int = 0) -> list[str]:
    """Documents of four sentences of made-up words (enough of them to fill a tokenizer's vocabulary)."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(3000)]
    return [" ".join(" ".join(rng.choices(words, k=10)).capitalize() + "." for _ in range(4)) for _ in range(n_docs)]


def _said(proc: subprocess.CompletedProcess, fragment: str) -> str:
    """The log line holding ``fragment`` (without its time and logger), else the error."""
    line = next((line for line in (proc.stdout + proc.stderr).splitlines() if fragment in line), last_line(proc))
    return " ".join(line.split("] - ", 1)[-1].split())[:160]


def _prepare(ws: Workspace, name: str, *data: str, timeout: int = 300) -> subprocess.CompletedProcess | None:
    """One training step on ``data``, with a cache and a run folder of its own; None if it ran out of time."""
    try:
        return ws.lmtrain(
            "pretrain",
            *TINY,
            "trainer.max_steps=1",
            *data,
            f"data.cache_dir={ws.root / f'cache-{name}'}",
            f"hydra.run.dir={ws.root / name}",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None


def _long_word(ws: Workspace, name: str, *data: str) -> Outcome:
    proc = _prepare(ws, name, *data)
    if proc is None:
        return Outcome(None, "tokenizer training still busy after 300 s", False)
    said = _said(proc, "cut into pieces")
    return Outcome(proc.returncode, said, proc.returncode == 0 and said.startswith("1 word of more than 100"))


def long_word_text_file(ws: Workspace) -> Outcome:
    corpus = ws.root / "long-word.txt"
    corpus.write_text("\n".join(_documents(200)) + "\n" + "a" * 1_000_000 + "\n")
    return _long_word(ws, "long-word-text", "data=text", f"data.train_files=[{corpus}]")


def long_word_jsonl_dataset(ws: Workspace) -> Outcome:
    folder = ws.root / "long-word-hf"
    folder.mkdir()
    rows = [*_documents(200), "a" * 1_000_000]
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": row}) + "\n" for row in rows))
    return _long_word(ws, "long-word-jsonl", "data=hf", f"data.path={folder}")


# a preparation with many small chunks, so that data.num_proc=4 starts its workers at once
PREPARE_IN_CHUNKS = """
from lmtrain.cli.main import main
from lmtrain.data import pretraining

if __name__ == "__main__":  # not in the workers, which import this file again
    pretraining.CHUNK_CHARS = 3000
    main()
"""


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux lists them per thread)."""
    listed = []
    for threads in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            listed += [int(child) for child in threads.read_text().split()]
    return listed


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but never reaped by its new parent, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def killed_preparation_workers(ws: Workspace) -> Outcome:
    corpus, script = ws.root / "workers.txt", ws.root / "prepare_in_chunks.py"
    corpus.write_text("\n".join(_documents(3000)) + "\n")
    script.write_text(PREPARE_IN_CHUNKS)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "pretrain",
            *TINY,
            "data=text",
            f"data.train_files=[{corpus}]",
            "data.num_proc=4",
            f"data.cache_dir={ws.root / 'cache-workers'}",
            f"hydra.run.dir={ws.root / 'workers'}",
        ],
        cwd=ws.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    helpers: list[int] = []
    shards = ws.root / "cache-workers" / "examples"
    try:
        deadline = time.time() + 300
        while job.poll() is None and time.time() < deadline:  # until the 4 workers (and the tracker) are at work
            time.sleep(0.1)
            helpers = _children(job.pid)
            if len(helpers) == 5 and len(list(shards.glob(".tmp-*/*/chunk-*/meta.json"))) >= 4:
                break
        job.send_signal(signal.SIGKILL)
        job.wait()
        time.sleep(5)
        left = [pid for pid in helpers if _running(pid)]
        return Outcome(
            -9,
            f"{len(helpers)} processes under the killed preparation, {len(left)} still running after 5 s",
            len(helpers) == 5 and not left,
        )
    finally:
        for pid in helpers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def many_files(ws: Workspace) -> Outcome:
    folder = ws.root / "many"
    folder.mkdir()
    for number, doc in enumerate(_documents(2000)):
        (folder / f"doc{number:05d}.txt").write_text(doc + "\n")
    started = time.time()
    proc = _prepare(ws, "many-files", "data=text", f"data.train_files=[{folder}/*.txt]")
    if proc is None:
        return Outcome(None, "still reading 2000 files after 300 s", False)
    seconds, locks = time.time() - started, list((ws.root / "cache-many-files").rglob("*.lock"))
    return Outcome(
        proc.returncode,
        f"{seconds:.0f} s in all, {len(locks)} lock files, said: {_said(proc, 'checking')}",
        proc.returncode == 0 and len(locks) == 2 and "checking 2000 files" in proc.stderr + proc.stdout,
    )


def loading_script_folder(ws: Workspace) -> Outcome:
    folder, marker = ws.root / "scripted", ws.root / "script-ran"
    folder.mkdir()
    (folder / "scripted.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": doc}) + "\n" for doc in _documents(50)))
    proc = _prepare(ws, "scripted-run", "data=hf", f"data.path={folder}")
    return refused(proc, "never runs the code of a dataset", not marker.exists())


def empty_saved_dataset(ws: Workspace) -> Outcome:
    folder = ws.root / "empty-saved"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import datasets, sys; datasets.Dataset.from_dict({'text': []}).save_to_disk(sys.argv[1])",
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    proc = _prepare(ws, "empty-saved-run", "data=hf", f"data.path={folder}")
    return refused(proc, "holds no rows in split 'train'")


def _limited(ws: Workspace, name: str, n_bytes: int, corpus: Path) -> subprocess.CompletedProcess:
    def limit_file_size() -> None:  # writes past n_bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))

    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "pretrain",
            *TINY,
            "data=text",
            f"data.train_files=[{corpus}]",
            f"data.cache_dir={ws.root / f'cache-{name}'}",
            f"hydra.run.dir={ws.root / name}",
        ],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=limit_file_size,
    )


def _cache_files(cache: Path) -> list[str]:
    return [str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]


def file_size_limit_examples(ws: Workspace) -> Outcome:
    corpus = ws.root / "limited.txt"
    corpus.write_text("\n".join(_documents(600)) + "\n")
    proc = _limited(ws, "limited-examples", 100_000, corpus)  # the run's records and the tokenizer fit
    left = [f for f in _cache_files(ws.root / "cache-limited-examples") if f.startswith("examples")]
    return refused(proc, "could not write the tokenized examples", not left)


def file_size_limit_tokenizer(ws: Workspace) -> Outcome:
    corpus = ws.root / "limited.txt"
    proc = _limited(ws, "limited-tokenizer", 15_000, corpus)  # the run's records fit, the tokenizer does not
    left = _cache_files(ws.root / "cache-limited-tokenizer")
    return refused(proc, "could not write the tokenizer", not left)


def _sequences(proc: subprocess.CompletedProcess | None) -> str:
    """The "N train / M held-out sequences" of a pretraining run's log, or ""."""
    output = "" if proc is None else proc.stdout + proc.stderr
    found = re.search(r"\d+ train / \d+ held-out sequences", output)
    return found.group() if found else ""


def tokenizer_file_that_pads_and_cuts(ws: Workspace) -> Outcome:
    """``tokenizer.path=`` a tokenizer.json saved to pad and cut every text at 16 tokens (as Hugging Face's
    MiniLM file does at 128): the corpus gives the same examples as with the same tokenizer saved without."""
    from tokenizers import Tokenizer

    source = _prepare(ws, "tokenizer-source")  # trains a tokenizer on the bundled corpus
    clean = ws.root / "tokenizer-source" / "tokenizer.json"
    if source is None or source.returncode != 0 or not clean.is_file():
        return Outcome(None if source is None else source.returncode, "could not train a tokenizer", False)
    tokenizer = Tokenizer.from_file(str(clean))
    tokenizer.enable_padding(length=16, pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=16)
    padded = ws.root / "padding-tokenizer.json"
    tokenizer.save(str(padded))
    expected = _sequences(_prepare(ws, "tokenizer-clean", f"tokenizer.path={clean}"))
    proc = _prepare(ws, "tokenizer-padded", f"tokenizer.path={padded}")
    got = _sequences(proc)
    held = proc is not None and proc.returncode == 0 and bool(expected) and got == expected
    return Outcome(None if proc is None else proc.returncode, f"{got or 'no sequences'} (unpadded: {expected})", held)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "7 1M-character word in a text file": long_word_text_file,
    "7 1M-character word in a jsonl dataset": long_word_jsonl_dataset,
    "8 kill -9 with data.num_proc=4": killed_preparation_workers,
    "9 glob over 2000 files": many_files,
    "hf folder with a loading script": loading_script_folder,
    "hf empty save_to_disk": empty_saved_dataset,
    "ulimit -f while writing examples": file_size_limit_examples,
    "ulimit -f while writing the tokenizer": file_size_limit_tokenizer,
    "tokenizer.path= a tokenizer.json that pads and cuts": tokenizer_file_that_pads_and_cuts,
}
