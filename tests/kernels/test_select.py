"""The switch: each choice puts its kernels in force, ``auto`` measures once and falls back with one warning."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F

from lmtrain.errors import UserError
from lmtrain.kernels import (
    Linear,
    active_cpu_kernels,
    cpu_kernels,
    dropout,
    select_cpu_kernels,
    use_cpu_kernels,
    use_onednn_products,
)
from lmtrain.kernels import select as select_module
from lmtrain.kernels.decision import REVIEWS
from lmtrain.kernels.memo import machine_key
from lmtrain.kernels.probe import ProbeTimes
from tests.kernels.op_patches import breaking_onednn_op, counting_onednn_op

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
SELECT_LOG = "lmtrain.kernels.select"


def layer_and_input(seed: int = 0) -> tuple[Linear, torch.Tensor]:
    torch.manual_seed(seed)
    return Linear(24, 40), torch.randn(4, 16, 24)


def test_torch_kernels_run_f_linear_and_pytorchs_dropout(monkeypatch):
    layer, x = layer_and_input()
    with cpu_kernels("torch") as kernels:
        calls = counting_onednn_op(monkeypatch)
        out = layer(x)
        torch.manual_seed(3)
        dropped = dropout(x, 0.3, training=True)
    assert kernels == "torch" and calls == []
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))
    torch.manual_seed(3)
    assert torch.equal(dropped, F.dropout(x, 0.3, training=True))


@needs_onednn
def test_onednn_kernels_run_the_onednn_op_with_f_linears_values(monkeypatch):
    layer, x = layer_and_input()
    x.requires_grad_()
    with cpu_kernels("onednn") as kernels:
        calls = counting_onednn_op(monkeypatch)
        out = layer(x)
        out.sum().backward()
    assert kernels == "onednn" and calls == [1, 1, 1]  # forward, dL/dx, dL/dW
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand_as(x), atol=1e-4, rtol=1e-4)


@needs_onednn
def test_auto_falls_back_with_one_warning_when_the_private_op_raises(monkeypatch, caplog, fresh_switch):
    breaking_onednn_op(monkeypatch, "unknown overload for _linear_pointwise")
    layer, x = layer_and_input()
    with caplog.at_level(logging.INFO, logger=SELECT_LOG):
        assert select_cpu_kernels("auto") == ("torch-matmul", "auto: oneDNN ops failed their check")
        out = layer(x)
        select_cpu_kernels("auto")  # a second selection reuses the first measurement
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "oneDNN's linear ops failed their start-up check (unknown overload for _linear_pointwise): "
        "lmtrain uses PyTorch's matrix products (trainer.cpu_kernels=torch-matmul)."
    ]
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))


@needs_onednn
def test_onednn_where_the_private_op_raises_is_a_user_error_naming_the_key(monkeypatch):
    breaking_onednn_op(monkeypatch, "unknown overload for _linear_pointwise")
    with pytest.raises(UserError) as error:
        select_cpu_kernels("onednn")
    assert str(error.value).startswith("trainer.cpu_kernels=onednn, but this PyTorch build")
    assert "(unknown overload for _linear_pointwise)" in str(error.value)
    assert (
        "Use trainer.cpu_kernels=auto (falls back by itself), trainer.cpu_kernels=torch-matmul or "
        "trainer.cpu_kernels=torch." in str(error.value)
    )


def test_missing_ops_make_auto_torch_matmul_and_onednn_an_error(monkeypatch, caplog, fresh_switch):
    monkeypatch.setattr(select_module, "onednn_ops_present", lambda: False)
    with caplog.at_level(logging.WARNING, logger=SELECT_LOG):
        assert select_cpu_kernels("auto")[0] == "torch-matmul"
    assert "linear ops (torch.ops.mkldnn._linear_pointwise) are missing" in caplog.text
    with pytest.raises(UserError, match="its oneDNN linear ops are missing or oneDNN is switched off"):
        select_cpu_kernels("onednn")


@needs_onednn
def test_auto_picks_the_clear_winner_of_its_measurement(monkeypatch, fresh_switch):
    for onednn_s, matmul_s, expected, gain in [
        (0.010, 0.015, "onednn", "oneDNN faster by 50%"),
        (0.015, 0.010, "torch-matmul", "torch-matmul faster by 50%"),
    ]:
        times = ProbeTimes(onednn_s=onednn_s, matmul_s=matmul_s, rounds=8)
        monkeypatch.setattr(select_module, "time_kernels", lambda backward, times=times: times)
        monkeypatch.setitem(select_module._state, "auto", None)
        kernels, why = select_cpu_kernels("auto")
        assert kernels == expected and why == f"auto: measured {times.describe()}: {gain}"


def test_auto_off_cpu_picks_torch_without_measuring(monkeypatch, fresh_switch):
    monkeypatch.setattr(select_module, "time_kernels", lambda backward=True: pytest.fail("measured for a GPU run"))
    assert select_cpu_kernels("auto", device="cuda") == ("torch", "auto: the model runs on cuda")


def test_nothing_selected_means_auto_on_first_use(monkeypatch, caplog, fresh_switch):
    with caplog.at_level(logging.INFO, logger=SELECT_LOG):
        kernels = active_cpu_kernels()
    assert select_module._state["active"] == select_module._state["auto"]
    assert f"CPU kernels: {kernels} (auto" in caplog.text and kernels in ("onednn", "torch-matmul")


def test_a_process_that_selected_nothing_times_the_forward_products_once_per_machine(
    tmp_path, monkeypatch, caplog, fresh_switch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a memo of its own
    timed: list[bool] = []
    times = ProbeTimes(onednn_s=0.015, matmul_s=0.010, rounds=3, backward=False)
    monkeypatch.setattr(select_module, "time_kernels", lambda backward: timed.append(backward) or times)
    monkeypatch.setattr(select_module, "check_onednn_ops", lambda: None)
    monkeypatch.setattr(select_module, "onednn_ops_present", lambda: True)
    with caplog.at_level(logging.INFO, logger=SELECT_LOG):
        assert active_cpu_kernels() == "torch-matmul"  # as `lmtrain generate` selects on its first kernel call
    assert timed == [False]
    assert (
        "CPU kernels: torch-matmul (auto: measured 15.0 ms with oneDNN vs 10.0 ms with torch-matmul (linear "
        "products forward only, 1024 and 400 rows, best of 3 each): torch-matmul faster by 50%; kept for this "
        "machine in"
    ) in caplog.text
    entries = json.loads((tmp_path / "lmtrain" / "cpu_kernels.json").read_text())
    assert [key.endswith(" | forward only") for key in entries] == [True]  # not the training runs' entry
    assert entries[machine_key(training=False)]["kernels"] == "torch-matmul"
    for _ in range(REVIEWS + 1):  # the next processes check it again, then it is settled: no more timing
        monkeypatch.setitem(select_module._state, "auto", None)
        monkeypatch.setitem(select_module._state, "active", None)
        assert active_cpu_kernels() == "torch-matmul"
    assert timed == [False] * (1 + REVIEWS)


def test_unknown_choice_names_the_key_and_the_choices():
    with pytest.raises(
        UserError,
        match=r"trainer.cpu_kernels=fast is not a kind of CPU kernels: use one of "
        r"auto, onednn, torch-matmul, torch\.",
    ):
        select_cpu_kernels("fast")


def test_the_sessions_choice_is_in_force(pytestconfig):
    choice = pytestconfig.getoption("--cpu-kernels")
    if choice == "auto":
        pytest.skip("no session choice given (--cpu-kernels / LMTRAIN_CPU_KERNELS): auto decides on first use")
    assert active_cpu_kernels() == choice  # e.g. CI's LMTRAIN_CPU_KERNELS=torch rerun
    assert use_cpu_kernels() == (choice != "torch") and use_onednn_products() == (choice == "onednn")
