"""``trainer.precision=bf16`` on CPU: autocast with fp32 master weights, the loss falls, resume is exact, and a CPU
without native bf16 gets a warning naming the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lmtrain.commands import pretrain
from lmtrain.run_folder.layout import read_metrics
from lmtrain.training import precision as precision_module
from lmtrain.training.precision import Precision, cpu_bf16_support
from tests.conftest import TINY, compose_config, stopping_after_step, write_corpus

PRECISION_LOG = "lmtrain.training.precision"
CPU = torch.device("cpu")


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=60)
    return [
        *TINY,
        "data=text",
        f"data.train_files=[{corpus}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.log_every=1",
        "model.dropout=0.1",
        "trainer.precision=bf16",
        "optim.lr=5e-3",
        "trainer.max_steps=16",
        "trainer.save_every=8",
        "trainer.eval_every=0",
        "trainer.keep_last=0",
        "trainer.preflight=false",
        *extra,
    ]


def _losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e}


def test_bf16_on_cpu_trains_with_the_loss_falling_and_resumes_exactly(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))  # a kernel memo of its own
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for folder in (straight, resumed):
        folder.mkdir()
    monkeypatch.chdir(straight)
    with caplog.at_level(logging.INFO, logger=PRECISION_LOG):
        pretrain.run(compose_config("pretrain", _overrides(tmp_path)))
    assert "trainer.precision=bf16 on" in caplog.text  # the run said how bf16 runs on this CPU
    monkeypatch.chdir(resumed)
    with stopping_after_step(8), pytest.raises(SystemExit):
        pretrain.run(compose_config("pretrain", _overrides(tmp_path)))
    pretrain.run(compose_config("pretrain", _overrides(tmp_path, "trainer.resume=auto")))

    expected, got = _losses(straight), _losses(resumed)
    assert sum(expected[s] for s in range(13, 17)) < sum(expected[s] for s in range(1, 5)) - 4 * 0.5, expected
    assert [got[s] for s in range(9, 17)] == [expected[s] for s in range(9, 17)]  # exact, with dropout on


def test_bf16_autocast_on_cpu_computes_in_bf16_and_keeps_fp32_weights():
    layer = torch.nn.Linear(8, 4)
    with Precision("bf16", CPU).autocast():
        out = layer(torch.randn(16, 8))
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    assert layer.weight.dtype == layer.weight.grad.dtype == torch.float32


def test_bf16_on_a_cpu_without_native_bf16_runs_with_a_warning_naming_the_key(monkeypatch, caplog):
    monkeypatch.setattr(precision_module, "cpu_bf16_support", lambda: None)
    with caplog.at_level(logging.WARNING, logger=PRECISION_LOG):
        Precision("bf16", CPU)
    assert caplog.messages == [
        "trainer.precision=bf16 on a CPU without native bf16 arithmetic (no AVX512-BF16 or AMX-BF16): PyTorch "
        "emulates it, so training is likely slower than in fp32. It runs as asked; use trainer.precision=fp32 for "
        "speed on this machine."
    ]


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx512f", "amx_bf16", "avx512_bf16"}, "AMX-BF16"),
        ({"avx512f", "avx512_bf16"}, "AVX512-BF16"),
        ({"fp", "asimd", "bf16"}, "BF16"),
        ({"avx2", "avx512f"}, None),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert cpu_bf16_support() == expected
