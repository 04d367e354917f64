"""status.json: every command says how it ended, and `lmtrain runs` believes it before guessing."""

from __future__ import annotations

import json
import subprocess
import sys

from lmtrain.cli.main import main
from lmtrain.run_folder.status import STATUS_FILE, exit_state, read_status, write_status
from lmtrain.runs import load_run
from lmtrain.runs.table import format_value
from tests.conftest import run_cli
from tests.runs.conftest import tiny_overrides


def _rows(capsys, *dirs) -> dict[str, dict]:
    main(["runs", *map(str, dirs), "--json"])
    return {row["run"].split("/")[-1]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}


def test_finished_training_run_records_its_state(sweep):
    record = read_status(sweep / "0")
    assert record["state"] == "finished" and record["command"] == "pretrain"


def test_export_is_finished_and_listed_apart_from_training_runs(sweep, tmp_path, capsys):
    run_dir = tmp_path / "outputs" / "export" / "e1"
    result = run_cli(
        "export", f"ckpt={sweep / '0'}", "format=hf", f"out={tmp_path / 'hf'}", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _rows(capsys, run_dir, sweep)
    assert rows["e1"]["status"] == "finished" and rows["e1"]["kind"] == "other"
    assert rows["0"]["kind"] == "training"
    main(["runs", str(run_dir), str(sweep)])
    out = capsys.readouterr().out
    assert "2 runs" in out and "1 run of other commands" in out


def test_failed_command_records_the_error_it_printed(tmp_path, capsys):
    run_dir = tmp_path / "bad"
    # fails after it has trained its tokenizer (work kept in the folder): the preflight evaluation check
    result = run_cli(
        "pretrain",
        *tiny_overrides(tmp_path),
        "trainer.max_steps=2",
        "trainer.monitor=eval/nope",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    record = read_status(run_dir)
    assert record["state"] == "failed" and record["exit_code"] == 2
    assert "trainer.monitor=eval/nope" in record["error"]
    row = _rows(capsys, run_dir)["bad"]
    assert row["status"] == "failed" and "trainer.monitor=eval/nope" in row["detail"]


def test_a_command_refused_before_any_work_leaves_no_run_folder(tmp_path):
    run_dir = tmp_path / "outputs" / "bad"
    result = run_cli(
        "export",
        f"ckpt={tmp_path / 'missing'}",
        "format=hf",
        f"out={tmp_path / 'hf'}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and str(tmp_path / "missing") in result.stderr
    assert not (tmp_path / "outputs").exists()  # the folders it made for the run are gone again
    default = run_cli("generate", cwd=tmp_path)  # no ckpt, in the default time-stamped folder
    assert default.returncode == 2 and "ckpt is not set" in default.stderr
    assert not list((tmp_path / "outputs").glob("generate/*"))


def test_interrupted_state_names_the_signal_and_the_checkpoint_step(tmp_path):
    (tmp_path / "checkpoints" / "step-40").mkdir(parents=True)
    (tmp_path / "checkpoints" / "last").symlink_to("step-40")
    state, details = exit_state(143)  # what fit_run exits with after SIGTERM
    write_status(tmp_path, state, command="pretrain", **details)
    assert read_status(tmp_path)["step"] == 40
    run = load_run(tmp_path)
    assert (run.status, run.detail) == ("interrupted", "by SIGTERM at step 40")
    assert exit_state(0) == ("finished", {}) and exit_state(1)[0] == "failed"


def test_running_only_while_its_process_lives(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 3.0}\n')
    write_status(tmp_path, "running", command="pretrain")  # this process: alive
    assert load_run(tmp_path).status == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {**json.loads((tmp_path / STATUS_FILE).read_text()), "pid": int(dead.stdout)}
    (tmp_path / STATUS_FILE).write_text(json.dumps(record))
    # killed outright a moment ago: the files are fresh, but nobody is running it
    assert load_run(tmp_path).status == "failed"


def test_numbers_have_one_format():
    assert format_value(18790.4) == format_value(18790) == "18,790"
    assert format_value(1549) == format_value(1549.0) == "1,549"
    assert format_value(0.12345) == "0.1235" and format_value(6) == "6" and format_value(None) == "-"
