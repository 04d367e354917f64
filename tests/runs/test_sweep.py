"""After `lmtrain pretrain -m`: sweep_summary.csv / .md ranked by the main metric, and a printed table."""

from __future__ import annotations

import csv

from lmtrain.runs.sweep import CSV_FILE, MARKDOWN_FILE, write_sweep_summary


def test_sweep_writes_ranked_summary_files(sweep):
    rows = list(csv.DictReader((sweep / CSV_FILE).open(encoding="utf-8")))
    assert sorted(row["job"] for row in rows) == ["0", "1"]
    assert {row["optim.lr"] for row in rows} == {"0.001", "0.003"}
    assert all(row["status"] == "finished" and row["metric"] == "mlm_acc" for row in rows)
    ranking = [float(row["best"]) for row in rows]
    assert ranking == sorted(ranking, reverse=True)  # mlm_acc: best (highest) first
    markdown = (sweep / MARKDOWN_FILE).read_text(encoding="utf-8")
    assert markdown.startswith("# Sweep lr: 2 jobs, best first by eval/mlm_acc")
    assert "| job | optim.lr | status |" in markdown and markdown.count("| finished |") == 2
    printed = (sweep / "stdout.txt").read_text(encoding="utf-8")
    assert "best first" in printed and "optim.lr=0.003" in printed


def test_summary_of_an_empty_folder_writes_nothing(tmp_path):
    assert write_sweep_summary(tmp_path) == []
    assert not (tmp_path / CSV_FILE).exists()
