"""trainer.loggers: TensorBoard event files hold the logged scalars, resumed runs continue them, W&B wiring."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest

from lmtrain.commands import pretrain
from lmtrain.errors import UserError
from lmtrain.run_folder.layout import RunDir, read_metrics
from lmtrain.training.assembly import finish_run
from lmtrain.training.loggers import TensorBoardLogger, open_loggers, require_loggers, send_summary
from tests.conftest import compose_config
from tests.runs.conftest import tiny_overrides


def _scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(tb_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _logged(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    return [(e["step"], e[metric]) for e in read_metrics(run_dir) if metric in e]


def test_tensorboard_event_files_hold_the_logged_scalars(sweep):
    scalars = _scalars(sweep / "0" / "tb")
    for metric in ("train/loss", "train/lr", "eval/mlm_acc"):
        assert [s for s, _ in scalars[metric]] == [s for s, _ in _logged(sweep / "0", metric)]
        assert [v for _, v in scalars[metric]] == pytest.approx([v for _, v in _logged(sweep / "0", metric)])


def test_resumed_run_continues_the_same_curves(sweep, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    run = tmp_path / "resumed"
    shutil.copytree(sweep / "0", run, symlinks=True)
    (run / "summary.json").unlink()
    monkeypatch.chdir(run)  # outside Hydra the run directory is the current directory
    cfg = compose_config(
        "pretrain",
        [
            *tiny_overrides(sweep.parent.parent),
            "optim.lr=1e-3",
            "trainer.loggers=[jsonl,tensorboard]",
            f"trainer.resume={run}/checkpoints/step-3",
        ],
    )
    pretrain.run(cfg)
    steps = [e["step"] for e in read_metrics(run) if "train/loss" in e]
    assert steps == [2, 4, 6]  # each step once
    scalars = _scalars(run / "tb")
    assert [s for s, _ in scalars["train/loss"]] == [2, 4, 6]
    assert [s for s, _ in scalars["eval/mlm_acc"]] == [3, 6]
    # the resumed attempt's values replace those written after step 3 by the first one
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([v for _, v in _logged(run, "train/loss")])
    assert (run / "summary.json").exists() and (run / "curves.png").exists()


def test_tensorboard_purges_steps_after_the_resume_point(tmp_path):
    pytest.importorskip("tensorboard")
    first = TensorBoardLogger(tmp_path, start_step=0)
    for step in range(1, 7):
        first.log(step, {"loss": float(step), "note": "text is skipped", "nan": float("nan")})
    first.finish()
    second = TensorBoardLogger(tmp_path, start_step=3)
    for step in range(4, 7):
        second.log(step, {"loss": 10.0 * step})
    second.finish()
    assert _scalars(tmp_path) == {"loss": [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]}


def test_missing_wandb_is_a_one_line_user_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(UserError, match=r"pip install 'lmtrain\[wandb\]'"):
        require_loggers(["jsonl", "wandb"])
    monkeypatch.chdir(tmp_path)
    cfg = compose_config("pretrain", [*tiny_overrides(tmp_path), "trainer.loggers=[jsonl,wandb]"])
    with pytest.raises(UserError, match="wandb"):
        pretrain.run(cfg)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "tokenizer.json").exists()  # before data preparation


def test_unknown_logger_name(tmp_path):
    with pytest.raises(UserError, match="unknown logger 'comet'; choose from jsonl, tensorboard, wandb, mlflow"):
        open_loggers(["jsonl", "comet"], tmp_path, {})
    assert open_loggers(["jsonl"], tmp_path, {}) == []


def test_wandb_gets_the_run_name_config_and_a_stable_id(tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        summary: dict = {}

        def log(self, data, step):
            calls.append(("log", step, data))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run_dir = tmp_path / "2024-05-01_12-00-00_bert"
    run_dir.mkdir()
    for _ in range(2):  # a second attempt (resume) continues the same W&B run
        (logger,) = open_loggers(["jsonl", "wandb"], run_dir, {"optim": {"lr": 0.001}})
        logger.log(5, {"train/loss": 7.5, "checkpoint": "path"})
        logger.finish()
    init_first, init_second = calls[0][1], calls[3][1]
    assert init_first["name"] == "2024-05-01_12-00-00_bert" and init_first["config"] == {"optim": {"lr": 0.001}}
    assert init_first["dir"] == str(run_dir) and init_first["id"] == init_second["id"]
    assert calls[1] == ("log", 5, {"train/loss": 7.5}) and calls[2] == ("finish",)

    send_summary(["jsonl", "wandb"], run_dir, {"steps": 5, "eval/mlm_acc": 0.25, "labels": ["a"], "config": {}})
    assert FakeRun.summary == {"steps": 5.0, "eval/mlm_acc": 0.25}  # numbers into the W&B run summary
    assert calls[-1] == ("finish",) and calls[-2][1]["id"] == init_first["id"]


def test_tensorboard_gets_the_config_and_the_summary_when_the_run_finishes(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    config = {"trainer": {"loggers": ["jsonl", "tensorboard"]}, "optim": {"lr": 0.001}}
    (logger,) = open_loggers(config["trainer"]["loggers"], tmp_path, config)
    logger.log(4, {"train/loss": 2.0})
    logger.finish()
    finish_run(
        RunDir(tmp_path), {"steps": 4, "eval/mlm_acc": 0.3, "config": config}, "test run", config["trainer"]["loggers"]
    )
    events = accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    assert events.Scalars("summary/eval/mlm_acc")[0].step == 4
    assert [e.step for e in events.Scalars("train/loss")] == [4]  # the training curve survives the reopening
    texts = {tag: events.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]}
    assert '"lr": 0.001' in texts["config/text_summary"] and '"lr"' not in texts["summary/text_summary"]
    assert '"eval/mlm_acc": 0.3' in texts["summary/text_summary"]


def test_mlflow_gets_config_metrics_and_summary_in_a_local_file_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # the default store is ./mlflow.db
    run_dir = tmp_path / "outputs" / "run-a"
    run_dir.mkdir(parents=True)
    config = {"trainer": {"loggers": ["jsonl", "mlflow"], "max_steps": 4}, "optim": {"lr": 0.001}}
    for steps in ([2, 4], [6]):  # the second attempt is a resume: the same MLflow run continues
        (logger,) = open_loggers(["jsonl", "mlflow"], run_dir, config)
        for step in steps:
            logger.log(step, {"train/loss": 10.0 / step, "checkpoint": "path"})
        logger.finish()
    send_summary(["jsonl", "mlflow"], run_dir, {"steps": 6, "eval/ppl": 42.0, "config": config})
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run((run_dir / "mlflow_run_id").read_text().strip())
    assert run.info.run_name == "run-a" and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001" and run.data.params["trainer.max_steps"] == "4"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(2, 5.0), (4, 2.5), (6, 10.0 / 6)]
    assert run.data.metrics["summary/eval/ppl"] == 42.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "summary.json"} <= artifacts
