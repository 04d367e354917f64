"""`lmtrain runs`: finds run directories, tells their status, shows the overrides that differ."""

from __future__ import annotations

import json
import time

import pytest

from lmtrain.cli.main import main
from lmtrain.runs import find_run_dirs, load_run
from lmtrain.runs.compare import differing_overrides, rank_runs, run_labels
from lmtrain.runs.record import run_status


def _json_rows(capsys, *args: str) -> list[dict]:
    main(["runs", *args, "--json"])
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def test_status_and_differing_overrides_of_real_runs(zoo, capsys):
    rows = {row["run"].split("/")[-1]: row for row in _json_rows(capsys, *(str(p) for p in zoo.values()))}
    assert {k: rows[k]["status"] for k in ("0", "1", "interrupted", "failed", "failed_log")} == {
        "0": "finished",
        "1": "finished",
        "interrupted": "interrupted",
        "failed": "failed",
        "failed_log": "failed",
    }
    # the sweep jobs differ in optim.lr only; the copies of job 0 share its value
    assert rows["0"]["overrides"] == {"optim.lr": "0.001"}
    assert rows["1"]["overrides"] == {"optim.lr": "0.003"}
    finished = rows["1"]
    assert finished["command"] == "pretrain" and finished["model"] == "bert" and finished["metric"] == "mlm_acc"
    assert finished["steps"] == 6 and finished["wall_seconds"] > 0 and finished["tokens_per_s"] > 0
    assert 0 <= finished["final"] <= 1 and finished["best"] >= finished["final"] and finished["best_step"] in (3, 6)
    interrupted = rows["interrupted"]  # no summary: progress and metric read back from metrics.jsonl
    assert interrupted["steps"] == 6 and interrupted["final"] == rows["0"]["final"]
    assert interrupted["best"] == rows["0"]["best"] and interrupted["tokens_per_s"] > 0


def test_table_output_and_search_below_folders(zoo, sweep, capsys):
    main(["runs", str(sweep.parent.parent)])  # the folder above multirun/: found recursively
    out = capsys.readouterr().out
    assert "2 runs" in out and "finished" in out and "optim.lr=0.003" in out and "mlm_acc" in out


def test_default_folders_are_outputs_and_multirun(zoo, tmp_path, monkeypatch, capsys):
    import shutil

    shutil.copytree(zoo["finished_a"], tmp_path / "outputs" / "pretrain" / "a", symlinks=True)
    shutil.copytree(zoo["interrupted"], tmp_path / "multirun" / "pretrain" / "s" / "0", symlinks=True)
    monkeypatch.chdir(tmp_path)
    rows = _json_rows(capsys)
    assert sorted((r["run"], r["status"]) for r in rows) == [
        ("multirun/pretrain/s/0", "interrupted"),
        ("outputs/pretrain/a", "finished"),
    ]
    # checkpoints/, tb/ and the like are never mistaken for runs
    assert find_run_dirs([tmp_path]) == sorted(
        p.resolve() for p in [tmp_path / "outputs/pretrain/a", tmp_path / "multirun/pretrain/s/0"]
    )


def test_running_when_files_changed_recently(zoo):
    run = zoo["interrupted"]
    mtime = (run / "metrics.jsonl").stat().st_mtime
    assert run_status(run, now=mtime + 30) == "running"
    assert run_status(run, now=mtime + 30, running_window=10) == "interrupted"
    assert run_status(zoo["failed"], now=time.time()) == "failed"


def test_missing_directory_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert "no such run directory" in capsys.readouterr().err


def test_no_runs_found(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["runs"])
    assert "no runs found" in capsys.readouterr().out


def test_labels_ranking_and_numbers_written_two_ways(zoo):
    runs = [load_run(zoo["finished_a"]), load_run(zoo["finished_b"])]
    assert run_labels(runs) == ["optim.lr=0.001", "optim.lr=0.003"]
    ranked = rank_runs(runs)
    assert ranked[0].ranking_value >= ranked[1].ranking_value  # mlm_acc: higher is better
    runs[1].overrides["optim.lr"] = "1e-3"  # the same number as job 0's 0.001
    assert differing_overrides(runs) == []


def test_a_run_without_a_summary_is_ranked_by_the_metric_its_checkpoints_record(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-10").mkdir(parents=True)
    (run / "checkpoints" / "step-10" / "model.json").write_text(json.dumps({"main_metric": "r_mean"}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "eval/loss": 2.0, "eval/r_mean": 0.4}) + "\n")
    assert load_run(run).metric == "r_mean"


def test_table_prints_brackets_in_overrides_as_they_are(zoo):
    from rich.console import Console

    from lmtrain.runs.table import run_rows, runs_table

    run = load_run(zoo["finished_a"])
    run.overrides = {"data.train_files": "[/data/a.txt,/data/b.txt]"}
    console = Console(record=True, width=300)
    console.print(runs_table(run_rows([run])))
    assert "data.train_files=[/data/a.txt,/data/b.txt]" in console.export_text()
