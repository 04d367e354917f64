"""Two runs of one command with ``trainer.cpu_kernels=auto`` and dropout on train alike, whatever each measures."""

from __future__ import annotations

import logging

import pytest
import torch

from lmtrain.commands import pretrain
from lmtrain.kernels import keep_freed_cpu_memory
from lmtrain.kernels import select as select_module
from lmtrain.kernels.probe import ProbeTimes
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import TINY, compose_config, write_corpus

ONEDNN_WINS = ProbeTimes(onednn_s=0.010, matmul_s=0.015, rounds=8)
MATMUL_WINS = ProbeTimes(onednn_s=0.015, matmul_s=0.010, rounds=8)  # a busy moment in the second run


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
def test_two_runs_of_one_command_with_dropout_give_the_same_losses(tmp_path, monkeypatch, caplog):
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=30)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))  # a kernel memo of its own
    # the runs select kernels for the process: the session's own choice comes back afterwards
    monkeypatch.setitem(select_module._state, "active", select_module._state["active"])
    losses, kernels = [], []
    for index, times in enumerate((ONEDNN_WINS, MATMUL_WINS)):
        run_dir = tmp_path / f"run{index}"
        run_dir.mkdir()
        monkeypatch.chdir(run_dir)
        monkeypatch.setitem(select_module._state, "auto", None)  # a new process
        monkeypatch.setattr(select_module, "time_kernels", lambda backward=True, times=times: times)
        cfg = compose_config(
            "pretrain",
            [
                *TINY,
                "data=text",
                f"data.train_files=[{corpus}]",
                f"data.cache_dir={tmp_path / 'cache'}",
                "trainer.log_every=1",
                "trainer.max_steps=4",
                "trainer.preflight=false",
                "model.dropout=0.1",
                "trainer.cpu_kernels=auto",
            ],
        )
        with caplog.at_level(logging.INFO, logger="lmtrain.training.session"):
            kernels.append(pretrain.run(cfg)["cpu_kernels"])
        losses.append([e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e])
    assert kernels == ["onednn", "onednn"] and len(losses[0]) == 4
    assert losses[0] == losses[1]
    assert "CPU kernels: onednn (auto: kept for this machine since " in caplog.text
    assert f"CPU memory: {keep_freed_cpu_memory()}" in caplog.text  # kept for reuse, on glibc
    assert (
        "torch-matmul faster by 50% (clear win 1 of the 2 in separate runs that switch the choice); "
        "this run keeps onednn)"
    ) in caplog.text
