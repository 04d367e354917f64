"""Run folders read as data, and what generate / predict print: odd files, huge logs, escapes, bad sampling values."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, last_line, refused
from hostile.tasks import tagger_run

# name -> files written into a copy of the finished run (relative path -> content)
_ODD = {
    "summary-list": {"summary.json": b"[1, 2]"},
    "summary-latin1": {"summary.json": b'{"command": "pretrain \xe9"}'},
    "summary-nested": {"summary.json": b"[" * 200_000},
    "string-numbers": {
        "summary.json": json.dumps(
            {"steps": "10", "wall_seconds": "x", "tokens_per_s": "y", "best/mlm_acc": "0.5", "model": ["bert"]}
        ).encode()
    },
    "embed-summary-odd": {
        "summary.json": json.dumps(
            {"method": {"a": 1}, "main_metric": ["analogy_accuracy"], "wall_time_s": "x", "eval/analogy_accuracy": "1"}
        ).encode()
    },
    "pid-1e30": {"status.json": json.dumps({"state": "running", "pid": 1e30, "host": socket.gethostname()}).encode()},
    "overrides-5": {".hydra/overrides.yaml": b"5\n"},
    "config-list": {".hydra/config.yaml": b"- a\n"},
    "python-tag": {".hydra/config.yaml": b"a: !!python/object/apply:os.system ['echo owned']\n"},
    "model-json-list": {"checkpoints/last/model.json": b"[1]"},
    "bad-steps": {"metrics.jsonl": b'{"step": "x"}\n{"step": 1e400}\n{"step": -1}\n[1]\n5\n\xff\xfe\n{"step": null}\n'},
}


def _odd_folders(ws: Workspace) -> Path:
    """``odd/<name>``: copies of the finished run, each with one crafted file (built once)."""
    root = ws.root / "odd"
    if root.is_dir():
        return root
    for name, files in _ODD.items():
        run = ws.fresh_run(f"odd/{name}")
        for relative, content in files.items():
            path = run / relative
            if path.is_symlink():
                path.unlink()
            mode = "ab" if relative == "metrics.jsonl" else "wb"
            with open(path, mode) as f:
                f.write(content)
    fifo = ws.fresh_run("odd/metrics-fifo") / "metrics.jsonl"
    fifo.unlink()
    os.mkfifo(fifo)  # reading it waits for a writer forever
    return root


def runs_lists_every_odd_folder(ws: Workspace) -> Outcome:
    root = _odd_folders(ws)
    proc = ws.lmtrain("runs", str(root), "--json", timeout=120)
    rows = {json.loads(line)["run"].split("/")[-1]: json.loads(line) for line in proc.stdout.splitlines()}
    unreadable = sorted(name for name, row in rows.items() if row["status"] == "unreadable")
    expected = sorted(["summary-list", "summary-latin1", "summary-nested", "overrides-5", "config-list", "python-tag"])
    held = (
        proc.returncode == 0
        and "Traceback" not in proc.stderr
        and len(rows) == len(_ODD) + 1
        and unreadable == expected
        and "owned" not in proc.stdout
    )
    return Outcome(proc.returncode, f"{len(rows)} rows, unreadable: {', '.join(unreadable)}", held)


def plot_on_odd_folders(ws: Workspace) -> Outcome:
    root = _odd_folders(ws)
    proc = ws.lmtrain("plot", str(root), f"out={ws.root / 'odd.png'}", timeout=120)
    held = proc.returncode == 0 and "Traceback" not in proc.stderr and (ws.root / "odd.png").is_file()
    return Outcome(proc.returncode, last_line(proc), held)


def runs_streams_a_huge_metrics_log(ws: Workspace) -> Outcome:
    run = ws.fresh_run("huge-metrics")
    event = json.dumps({"train/loss": 3.0, "train/lr": 1e-4, **{f"train/extra_{i}": 0.5 for i in range(10)}})[1:]
    with open(run / "metrics.jsonl", "a") as f:
        for step in range(5, 150_005):  # about 50 MB
            f.write(f'{{"step": {step}, {event}\n')
    size = (run / "metrics.jsonl").stat().st_size
    # a fresh parent, so that its largest child is this command
    measure = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "lmtrain", "runs", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ws.root,
    )
    peak = int(proc.stdout.strip() or 0) * 1024  # Linux reports kilobytes
    shutil.rmtree(run)
    # reading it whole took about 7 bytes of memory per byte of file
    return Outcome(proc.returncode, f"peak {peak >> 20} MB for a {size >> 20} MB metrics.jsonl", 0 < peak < size)


def running_status_with_pid_0(ws: Workspace) -> Outcome:
    run = ws.fresh_run("pid-0")
    (run / "summary.json").unlink()  # judged by status.json and the files, not by a summary
    record = {"state": "running", "pid": 0, "host": socket.gethostname(), "command": "pretrain"}
    (run / "status.json").write_text(json.dumps(record))
    proc = ws.lmtrain("runs", str(run), "--json")  # its files are fresh, but its "process" is known gone
    status = json.loads(proc.stdout)["status"] if proc.returncode == 0 else None
    return Outcome(proc.returncode, f"status: {status}", status == "interrupted")


def escapes_in_status_are_not_obeyed(ws: Workspace) -> Outcome:
    run = ws.fresh_run("escapes")
    record = {"state": "failed", "error": "\x1b[2J\x1b]0;owned\x07 cleared your screen", "command": "pretrain"}
    (run / "status.json").write_text(json.dumps(record))
    proc = ws.lmtrain("runs", str(run))
    held = proc.returncode == 0 and "\x1b" not in proc.stdout and "\\x1b[2J" in proc.stdout
    return Outcome(proc.returncode, "escapes printed as text" if held else repr(proc.stdout[-120:]), held)


def predict_input_not_utf8(ws: Workspace) -> Outcome:
    text = ws.root / "latin1.txt"
    text.write_bytes(b"Alice visited Paris .\nA caf\xe9 in Lyon .\n")
    # a fine-tuned tagger: predict refuses a pretrained checkpoint before it reads its input
    proc = ws.lmtrain("predict", f"ckpt={tagger_run(ws)}", f"input={text}", f"hydra.run.dir={ws.root / 'p'}")
    return refused(proc, "line 2: not UTF-8 text")


def _gpt_run(ws: Workspace) -> Path:
    """A finished tiny GPT run (trained once), to generate from."""
    gpt = ws.root / "gpt"
    if not gpt.is_dir():
        made = ws.lmtrain("pretrain", "model=gpt", *TINY, *ws.data, f"hydra.run.dir={gpt}")
        if made.returncode != 0:
            raise RuntimeError(f"could not train the GPT run: {last_line(made)}")
    return gpt


def generate_temperature_1e_300(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("generate", f"ckpt={_gpt_run(ws)}", "prompt=hi", "temperature=1e-300")
    return refused(proc, "temperature=1e-300: must be 0 (greedy) or in [0.01, 100]")


def generate_temperature_inf(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("generate", f"ckpt={_gpt_run(ws)}", "prompt=hi", "temperature=inf")
    return refused(proc, "temperature=inf: must be 0 (greedy) or in [0.01, 100]")


def no_log_line_inside_streamed_text(ws: Workspace) -> Outcome:
    gpt = _gpt_run(ws)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "generate",
            f"ckpt={gpt}",
            "prompt=The fire",
            "max_new_tokens=8",
            f"hydra.run.dir={ws.root / 'gen'}",
        ],
        cwd=ws.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    line = next((line for line in proc.stdout.splitlines() if line.startswith("The fire")), "")
    held = proc.returncode == 0 and line and "][INFO]" not in line and "][WARNING]" not in line
    return Outcome(proc.returncode, repr(line[:100]), bool(held))


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "odd run folders: one row each": runs_lists_every_odd_folder,
    "plot on odd run folders": plot_on_odd_folders,
    "runs streams a 50 MB metrics.jsonl": runs_streams_a_huge_metrics_log,
    "status.json running with pid 0": running_status_with_pid_0,
    "ANSI escapes in status.json": escapes_in_status_are_not_obeyed,
    "predict input not UTF-8": predict_input_not_utf8,
    "generate temperature=1e-300": generate_temperature_1e_300,
    "generate temperature=inf": generate_temperature_inf,
    "no log line inside streamed text": no_log_line_inside_streamed_text,
}
