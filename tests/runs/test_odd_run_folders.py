"""`lmtrain runs` and `lmtrain plot` on damaged or crafted run folders: one row each, the listing goes on.

A run folder is data users download and share, so every file in it may be anything. Each odd
folder below gets its own row (``unreadable`` with the reason when a file cannot be read as what
it should be); values of the wrong type count as missing; nothing is a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import tracemalloc
from pathlib import Path

import pytest

from lmtrain.cli.main import main
from lmtrain.runs import load_run

EVENTS = [
    {"step": 2, "train/loss": 5.0, "train/tokens_seen": 100, "train/tokens_per_s": 50.0},
    {"step": 4, "train/loss": 4.0, "train/tokens_seen": 200, "train/tokens_per_s": 100.0, "eval/acc": 0.4},
]


def _run(root: Path, name: str, files: dict[str, str | bytes], events=EVENTS) -> Path:
    """A run folder with ``metrics.jsonl`` of ``events`` and ``files`` (relative path -> content)."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("trainer:\n  max_steps: 4\n")
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    for relative, content in files.items():
        path = run / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    make_old(run)
    return run


def make_old(run: Path) -> None:
    """Date every file long ago: nothing here is running."""
    for file in [run, *run.rglob("*")]:
        if not file.is_fifo():
            os.utime(file, (1_000_000_000, 1_000_000_000))


def _status(**record) -> str:
    return json.dumps({"host": socket.gethostname(), **record})


ODD = {  # name -> (files, the reason its row names, or None for a readable row)
    "summary_list": ({"summary.json": "[1, 2]"}, "summary.json holds a list, not an object"),
    "summary_not_utf8": ({"summary.json": b'{"steps": "\xff\xfe"}'}, "summary.json is not UTF-8 text"),
    "summary_not_json": ({"summary.json": '{"steps": 4,'}, "summary.json is not valid JSON"),
    "summary_nested": ({"summary.json": "[" * 200_000}, "summary.json is nested too deeply"),
    "string_numbers": (
        {
            "summary.json": json.dumps(
                {
                    "steps": "10",
                    "wall_seconds": "fast",
                    "tokens_per_s": "x",
                    "best/acc": "0.5",
                    "best_step": "3",
                    "eval/acc": "0.4",
                    "command": 5,
                    "model": ["bert"],
                    "config": "x",
                }
            )
        },
        None,
    ),
    "pid_1e30": ({"status.json": _status(state="running", pid=1e30)}, None),
    "pid_string": ({"status.json": _status(state="running", pid="12")}, None),
    "status_odd_values": ({"status.json": _status(state="interrupted", signal=["x"], step="7")}, None),
    "overrides_int": ({".hydra/overrides.yaml": "5\n"}, "overrides.yaml holds a number, not a list"),
    "overrides_not_strings": ({".hydra/overrides.yaml": "- a=1\n- [b]\n"}, "not a list of key=value strings"),
    "config_list": ({".hydra/config.yaml": "- a\n- b\n"}, "config.yaml holds a list, not an object"),
    "config_list_beside_a_summary": (
        {"summary.json": json.dumps({"config": {"trainer": {}}}), ".hydra/config.yaml": "- a\n"},
        "config.yaml holds a list, not an object",
    ),
    "config_odd_nodes": ({".hydra/config.yaml": "model: bert\ntrainer: [1]\ntask: 3\n"}, None),
    "config_python_tag": (
        {".hydra/config.yaml": "a: !!python/object/apply:os.system ['true']\n"},
        "config.yaml is not valid YAML",
    ),
    "hydra_odd": ({".hydra/hydra.yaml": "hydra: 5\n"}, None),
    "model_json_list": ({"checkpoints/step-4/model.json": "[1]"}, None),
}
BAD_LINES = [
    '{"step": "x", "eval/acc": 1}',
    '{"step": null}',
    '{"step": 1e400}',
    '{"step": -3}',
    '{"step": true}',
    '{"step": 1.5}',
    "[1, 2]",
    "5",
    '"text"',
    "{not json",
    '{"step": 3, "eval/acc": NaN}',
    '{"step": 3, "eval/acc": "0.9"}',
    '{"step": 99999999999999999999999999}',
    "\udcff",
]


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    runs = {name: _run(root, name, files) for name, (files, _) in ODD.items()}
    bad = "".join(line.encode("utf-8", "surrogateescape").decode("latin-1") + "\n" for line in BAD_LINES)
    runs["metrics_bad_steps"] = _run(root, "metrics_bad_steps", {})
    with open(runs["metrics_bad_steps"] / "metrics.jsonl", "a", encoding="latin-1") as f:
        f.write(bad)
    runs["metrics_fifo"] = _run(root, "metrics_fifo", {})
    (runs["metrics_fifo"] / "metrics.jsonl").unlink()
    os.mkfifo(runs["metrics_fifo"] / "metrics.jsonl")  # reading it would wait for a writer forever
    runs["summary_dir"] = _run(root, "summary_dir", {"summary.json/x": "{}"})
    for run in runs.values():
        make_old(run)
    return runs


def _rows(capsys, *paths: Path) -> dict[str, dict]:
    main(["runs", *map(str, paths), "--json"])
    return {row["run"].split("/")[-1]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}


def test_every_odd_folder_is_one_row_and_the_listing_goes_on(odd, capsys):
    rows = _rows(capsys, *odd.values())
    assert sorted(rows) == sorted(odd)
    for name, (_, reason) in ODD.items():
        if reason is None:
            assert rows[name]["status"] != "unreadable", rows[name]
        else:
            assert rows[name]["status"] == "unreadable" and reason in rows[name]["detail"], rows[name]
    assert rows["summary_dir"]["status"] == "unreadable" and "summary.json" in rows["summary_dir"]["detail"]
    # values of the wrong type count as missing: progress and metric come from metrics.jsonl
    numbers = rows["string_numbers"]
    assert (numbers["steps"], numbers["final"], numbers["best"], numbers["best_step"]) == (4, 0.4, 0.4, 4)
    assert numbers["command"] is None and numbers["model"] is None
    assert numbers["tokens_per_s"] == 66.7  # 200 tokens in 2 s + 1 s
    assert rows["status_odd_values"]["detail"] == "before its first checkpoint"
    main(["runs", *map(str, odd.values())])  # the table too
    assert "unreadable" in capsys.readouterr().out


def test_bad_lines_of_metrics_are_left_out(odd, capsys):
    row = _rows(capsys, odd["metrics_bad_steps"])["metrics_bad_steps"]
    assert (row["steps"], row["metric"], row["final"], row["best"]) == (4, "acc", 0.4, 0.4)
    assert row["status"] == "failed"
    assert _rows(capsys, odd["metrics_fifo"])["metrics_fifo"]["steps"] is None


@pytest.mark.parametrize("pid", [0, -1, 1e30, True, 2**40])
def test_a_running_record_with_an_impossible_pid_is_not_running(tmp_path, capsys, pid):
    run = _run(tmp_path, "r", {"status.json": _status(state="running", pid=pid)})
    assert load_run(run).status == "failed"
    os.utime(run / "metrics.jsonl")  # fresh files do not make it running either: its process is known gone
    assert load_run(run).status == "failed"


def test_control_characters_from_a_run_folder_are_printed_escaped(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short paths: no cell is folded
    run = _run(
        tmp_path,
        "run\x1b[31m",
        {
            "status.json": _status(state="failed", error="\x1b[2J\x1b]0;owned\x07 boom"),
            ".hydra/overrides.yaml": '- "optim.lr=\\e[5m1"\n',
        },
    )
    main(["runs", str(run)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "run\\x1b[31m" in out and "\\x1b[2J" in out and "optim.lr=\\x1b[5m1" in out


def test_metrics_are_streamed_not_loaded_whole(tmp_path):
    event = {
        "train/loss": 3.0,
        "train/lr": 1e-4,
        "train/tokens_seen": 0,
        "train/tokens_per_s": 1000.0,
        **{f"train/extra_{i}": 0.5 for i in range(20)},
    }
    run = _run(tmp_path, "big", {}, events=[])
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 20_001):
            f.write(json.dumps({"step": step, **event, "train/tokens_seen": 100 * step}) + "\n")
    size = (run / "metrics.jsonl").stat().st_size  # about 15 MB
    tracemalloc.start()
    record = load_run(run)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert record.steps == 20_000 and record.tokens_per_s == pytest.approx(1000.0)
    assert peak < size / 20, (peak, size)


def test_plot_on_odd_folders_draws_what_it_can(odd, tmp_path, capsys):
    readable = [p for name, p in odd.items() if name != "metrics_fifo"]
    main(["plot", *map(str, readable), f"out={tmp_path / 'all.png'}"])
    assert (tmp_path / "all.png").stat().st_size > 1000
    for name, path in odd.items():
        try:
            main(["plot", str(path), f"out={tmp_path / (name + '.png')}"])
        except SystemExit as error:  # a one-paragraph refusal is fine, a traceback is not
            assert error.code == 2
    assert "Traceback" not in capsys.readouterr().err
