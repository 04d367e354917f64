"""`lmtrain plot` and curves.png: PNGs of the expected size, clear errors for unknown metrics."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from lmtrain.cli.main import main
from lmtrain.runs.plot import CURVES_FILE, figure_pixels
from lmtrain.runs.series import ema, metric_series, x_values


def _size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_finished_pretrain_run_writes_curves_png(sweep):
    for job in ("0", "1"):
        assert _size(sweep / job / CURVES_FILE) == figure_pixels(2)  # train/loss and eval/mlm_acc


def test_plot_one_run(sweep, tmp_path, capsys):
    out = tmp_path / "one.png"
    main(["plot", str(sweep / "0"), f"out={out}"])
    assert _size(out) == figure_pixels(2) == (1200, 400)
    assert "1 run folder read; wrote " + str(out) in capsys.readouterr().err


def test_plot_several_runs_against_tokens_and_time(sweep, tmp_path):
    out = tmp_path / "many.png"
    main(
        [
            "plot",
            str(sweep / "0"),
            str(sweep / "1"),
            "metrics=[train/loss,eval/mlm_acc,train/lr]",
            f"out={out}",
            "x=tokens",
            "svg=true",
        ]
    )
    assert _size(out) == figure_pixels(3) == (1200, 800)
    assert out.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    main(["plot", str(sweep), "metrics=mlm_acc", f"out={tmp_path / 'time.png'}", "x=time"])  # a sweep folder
    assert _size(tmp_path / "time.png") == figure_pixels(2)  # mlm_acc matches train/ and eval/mlm_acc


def test_unknown_metric_names_the_metrics_that_exist(sweep, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(sweep / "0"), "metrics=[train/loss,eval/bleu]", f"out={tmp_path / 'x.png'}"])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "eval/bleu" in err and "eval/mlm_acc" in err and "train/loss" in err
    assert not (tmp_path / "x.png").exists()


def test_bad_options_are_user_errors(sweep, tmp_path, capsys):
    for option in ("x=epochs", "colour=red", "svg=maybe"):
        with pytest.raises(SystemExit) as exit_info:
            main(["plot", str(sweep / "0"), option, f"out={tmp_path / 'x.png'}"])
        assert exit_info.value.code == 2
    assert "x=epochs" in capsys.readouterr().err


def test_out_never_replaces_a_file_of_another_kind(sweep, tmp_path, capsys):
    run = str(sweep / "0")
    readme, notes, svg = tmp_path / "README.md", tmp_path / "notes.png", tmp_path / "pic.svg"
    readme.write_text("mine\n")
    notes.write_text("not a picture\n")
    svg.write_text("mine too\n")
    refusals = [
        ([f"out={readme}"], "lmtrain plot writes a PNG picture; give a name ending in .png"),
        ([f"out={notes}"], "notes.png exists and is not a PNG picture (it does not start as a PNG does)"),
        ([f"out={tmp_path / 'pic.png'}", "svg=true"], "pic.svg exists and is not an SVG picture"),
        ([f"out={tmp_path / 'c.png'}", "chart=confusion", "smooth=0.5"], "smooth=0.5 is read only by chart=curves"),
    ]
    for options, message in refusals:
        with pytest.raises(SystemExit) as exit_info:
            main(["plot", run, *options])
        assert exit_info.value.code == 2
        assert message in " ".join(capsys.readouterr().err.split())
    assert readme.read_text() == "mine\n" and notes.read_text() == "not a picture\n" and svg.read_text() == "mine too\n"
    assert not (tmp_path / "pic.png").exists()
    main(["plot", run, f"out={tmp_path / 'again.png'}", "svg=true"])
    main(["plot", run, f"out={tmp_path / 'again.png'}", "svg=true"])  # its own earlier pictures: replaced
    assert (tmp_path / "again.svg").is_file()


def test_series_each_step_once_and_axes():
    events = [
        {"step": 2, "train/loss": 5.0, "train/tokens_seen": 100, "train/tokens_per_s": 50.0},
        {"step": 4, "train/loss": 4.0, "train/tokens_seen": 200, "train/tokens_per_s": 100.0},
        {"step": 4, "train/loss": 3.9, "train/tokens_seen": 200, "train/tokens_per_s": 100.0},  # re-logged
        {"step": 4, "eval/acc": 0.5},
    ]
    steps, values = metric_series(events, "train/loss")
    assert steps.tolist() == [2, 4] and values.tolist() == [5.0, 3.9]
    assert x_values(events, np.array([2.0, 4.0]), "tokens").tolist() == [100, 200]
    assert x_values(events, np.array([2.0, 4.0]), "time").tolist() == [2.0, 3.0]  # 100/50 s, then 100/100 s


def test_ema_is_debiased():
    values = np.array([4.0, 4.0, 2.0])
    smoothed = ema(values, 0.5)
    assert smoothed[0] == 4.0 and smoothed[1] == 4.0 and 2.0 < smoothed[2] < 4.0
    assert ema(values, 0.0) is values


def test_pictures_need_no_plotting_library(sweep, tmp_path, monkeypatch, capsys):
    from lmtrain.runs.plot import save_run_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run, symlinks=True)
    (run / CURVES_FILE).unlink()
    assert save_run_curves(run) == run / CURVES_FILE
    assert _size(run / CURVES_FILE) == figure_pixels(2)
    main(["plot", str(run), f"out={tmp_path / 'x.png'}", "svg=true"])
    assert _size(tmp_path / "x.png") == figure_pixels(2) and (tmp_path / "x.svg").is_file()


def _finetune_summary(path, matrix, per_type=None):
    path.mkdir(parents=True)
    summary = {"command": "finetune", "task": "classification", "eval/accuracy": 0.5}
    if matrix is not None:
        labels = ["neg", "pos"]
        summary["confusion_matrix"] = {"labels": labels, "matrix": matrix}
        summary["per_class"] = {
            label: {"precision": 0.5, "recall": 0.5, "f1": f1, "support": 2} for label, f1 in zip(labels, (0.4, 0.6))
        }
    summary.update(per_type or {})
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    return path


def test_plot_draws_confusion_matrices_and_f1_of_several_runs_side_by_side(tmp_path, capsys):
    a = _finetune_summary(tmp_path / "a", [[3, 1], [2, 2]])
    b = _finetune_summary(tmp_path / "b", [[4, 0], [1, 3]])
    ner = _finetune_summary(tmp_path / "ner", None, {"eval/PER/f1": 0.7, "eval/LOC/f1": 0.5, "eval/f1": 0.6})
    main(["plot", str(a), str(b), "chart=confusion", f"out={tmp_path / 'c.png'}"])
    one = Image.open(tmp_path / "c.png").size
    main(["plot", str(a), "chart=confusion", f"out={tmp_path / 'c1.png'}"])
    assert one[0] == 2 * Image.open(tmp_path / "c1.png").size[0]  # two panels side by side
    main(["plot", str(a), str(ner), "chart=f1", f"out={tmp_path / 'f1.png'}"])
    assert (tmp_path / "f1.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["plot", str(ner), "chart=confusion", f"out={tmp_path / 'none.png'}"])
    assert "none of the runs has a confusion matrix" in capsys.readouterr().err


def _curves_run(path, baselines: dict, lr: str = "1e-3"):
    """A run of 6 logged steps (train/loss every step, eval/mlm_acc at 3 and 6) whose summary records ``baselines``."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(f"- optim.lr={lr}\n")
    events = [{"step": s, "train/loss": 6.0 - s * 0.5 + (s % 2) * 0.3} for s in range(1, 7)]
    events += [{"step": 3, "eval/mlm_acc": 0.04}, {"step": 6, "eval/mlm_acc": 0.09}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = {"command": "pretrain", "best/mlm_acc": 0.09, "best_step": 6, **baselines}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_curves_show_baselines_dashed_and_say_which_line_is_raw_and_smoothed(tmp_path):
    from lmtrain.runs import load_run
    from lmtrain.runs.plot import curves_chart

    run = _curves_run(tmp_path / "a", {"baseline/mlm_majority_acc": 0.05, "baseline/unigram_ppl": 300.0})
    loss, acc = curves_chart([load_run(run)]).panels
    assert loss.legend() == ["raw", "smoothed (EMA 0.6)"]
    assert [level.value for level in acc.levels] == [0.05]  # unigram_ppl stands for eval/ppl: not here
    assert acc.legend() == ["mlm_majority_acc baseline (0.05)"]
    assert loss.x_ticks() and all(float(tick).is_integer() for tick in loss.x_ticks())  # steps: no tick at 2.5


def test_several_runs_share_one_baseline_line_and_the_first_panel_names_the_runs(tmp_path):
    from lmtrain.runs import load_run
    from lmtrain.runs.baselines import stands_for
    from lmtrain.runs.plot import curves_chart

    runs = [
        load_run(_curves_run(tmp_path / name, {"baseline/mlm_majority_acc": 0.05}, lr))
        for name, lr in (("a", "1e-3"), ("b", "3e-3"))
    ]
    loss, acc = curves_chart(runs).panels
    assert loss.legend() == ["optim.lr=1e-3", "optim.lr=3e-3", "raw", "smoothed (EMA 0.6)"]
    assert acc.legend() == ["mlm_majority_acc baseline (0.05)"]
    assert len(acc.levels) == 1 and acc.levels[0].color == "#000000"  # one line for the value both recorded
    assert stands_for("unigram_ppl", "ppl") and stands_for("lexicon_f1", "f1") and stands_for("all_o_f1", "f1")
    assert stands_for("mlm_majority_acc", "mlm_acc") and not stands_for("unigram_ppl", "mlm_ppl")
    assert not stands_for("f1", "f1") and not stands_for("majority_accuracy", "acc")


def test_confusion_of_several_runs_draws_each_or_says_why_not(tmp_path, caplog):
    import logging

    a = _finetune_summary(tmp_path / "a", [[3, 1], [2, 2]])
    b = _finetune_summary(tmp_path / "b", [[4, 0], [1, 3]])
    c = _finetune_summary(tmp_path / "c", [[1, 0], [0, 1]])
    d = _finetune_summary(tmp_path / "d", [[2, 2], [0, 4]])
    ner = _finetune_summary(tmp_path / "ner", None, {"eval/PER/f1": 0.7})
    bad = _finetune_summary(tmp_path / "bad", [["x", 1], [2]])
    with caplog.at_level(logging.WARNING, logger="lmtrain.runs.task_plots"):
        main(["plot", str(a), str(b), str(ner), str(bad), "chart=confusion", f"out={tmp_path / 'two.png'}"])
    assert f"{ner}: its summary.json has no confusion matrix" in caplog.text
    assert f"{bad}: its confusion matrix is malformed" in caplog.text
    main(["plot", str(a), "chart=confusion", f"out={tmp_path / 'one.png'}"])
    one = _size(tmp_path / "one.png")
    assert _size(tmp_path / "two.png") == (2 * one[0], one[1])
    main(["plot", str(a), str(b), str(c), str(d), "chart=confusion", f"out={tmp_path / 'four.png'}"])
    assert _size(tmp_path / "four.png") == (3 * one[0], 2 * one[1])  # three to a row: every run drawn
