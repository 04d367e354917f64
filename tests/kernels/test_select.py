"""The switch: each choice puts its kernels in force, ``auto`` measures once and falls back with one warning."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F

from lmtrain.errors import UserError
from lmtrain.kernels import Linear, cpu_kernels, dropout, select_cpu_kernels, use_cpu_kernels
from lmtrain.kernels import select as select_module
from lmtrain.kernels import memo as memo_module
from lmtrain.kernels.probe import ProbeTimes
from tests.kernels.op_patches import breaking_onednn_op, counting_onednn_op

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
SELECT_LOG = "lmtrain.kernels.select"
ONEDNN_WINS = ProbeTimes(onednn=(1.0, 1.0, 1.1), torch=(3.0, 3.0, 3.1))
TORCH_WINS = ProbeTimes(onednn=(3.0, 3.0, 3.1), torch=(1.0, 1.0, 1.1))
TIE = ProbeTimes(onednn=(1.0, 1.1, 1.0), torch=(1.02, 1.0, 1.1))


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
        assert select_cpu_kernels("auto") == ("torch", "auto: oneDNN ops failed their check")
        out = layer(x)
        select_cpu_kernels("auto")  # a second selection reuses the first measurement
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["oneDNN's linear ops failed their start-up check (unknown overload for _linear_pointwise): "
                        "lmtrain uses PyTorch's own CPU kernels."]
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))


@needs_onednn
def test_onednn_where_the_private_op_raises_is_a_user_error_naming_the_key(monkeypatch):
    breaking_onednn_op(monkeypatch, "unknown overload for _linear_pointwise")
    with pytest.raises(UserError) as error:
        select_cpu_kernels("onednn")
    assert str(error.value).startswith("trainer.cpu_kernels=onednn, but this PyTorch build")
    assert "(unknown overload for _linear_pointwise)" in str(error.value)
    assert "Use trainer.cpu_kernels=auto (falls back by itself) or trainer.cpu_kernels=torch." in str(error.value)


def test_missing_ops_make_auto_torch_and_onednn_an_error(monkeypatch, caplog, fresh_switch):
    monkeypatch.setattr(select_module, "onednn_ops_present", lambda: False)
    with caplog.at_level(logging.WARNING, logger=SELECT_LOG):
        assert select_cpu_kernels("auto")[0] == "torch"
    assert "linear ops (torch.ops.mkldnn._linear_pointwise) are missing" in caplog.text
    with pytest.raises(UserError, match="its oneDNN linear ops are missing or oneDNN is switched off"):
        select_cpu_kernels("onednn")


@needs_onednn
def test_auto_picks_the_clear_winner_of_its_measurement(monkeypatch, fresh_switch):
    for times, expected in [(ONEDNN_WINS, "onednn"), (TORCH_WINS, "torch")]:
        monkeypatch.setattr(select_module, "time_kernels", lambda times=times: times)
        monkeypatch.setitem(select_module._state, "auto", None)
        kernels, why = select_cpu_kernels("auto")
        assert kernels == expected and why.startswith(f"auto: {times.describe()}")


def test_auto_off_cpu_picks_torch_without_measuring(monkeypatch, fresh_switch):
    monkeypatch.setattr(select_module, "time_kernels", lambda: pytest.fail("measured for a GPU run"))
    assert select_cpu_kernels("auto", device="cuda") == ("torch", "auto: the model runs on cuda")


def test_nothing_selected_means_auto_on_first_use(monkeypatch, caplog, fresh_switch):
    with caplog.at_level(logging.INFO, logger=SELECT_LOG):
        on = use_cpu_kernels()
    assert select_module._state["active"] == select_module._state["auto"]
    assert f"CPU kernels: {'onednn' if on else 'torch'} (auto" in caplog.text


def test_unknown_choice_names_the_key_and_the_choices():
    with pytest.raises(UserError, match=r"trainer.cpu_kernels=fast is not a kind of CPU kernels: use one of "
                                        r"auto, onednn, torch\."):
        select_cpu_kernels("fast")


def test_the_sessions_choice_is_in_force(pytestconfig):
    choice = pytestconfig.getoption("--cpu-kernels")
    if choice == "auto":
        pytest.skip("no session choice given (--cpu-kernels / LMTRAIN_CPU_KERNELS): auto decides on first use")
    assert use_cpu_kernels() == (choice == "onednn")  # e.g. CI's LMTRAIN_CPU_KERNELS=torch rerun


def new_process(monkeypatch, times: ProbeTimes | None, wide_vectors: bool = True) -> None:
    """A new process on the same machine whose check measures ``times`` (None: must not measure)."""
    def must_not_measure():
        raise AssertionError("measured again")

    monkeypatch.setitem(select_module._state, "auto", None)
    monkeypatch.setattr(select_module, "time_kernels", must_not_measure if times is None else lambda: times)
    monkeypatch.setattr(select_module, "cpu_has_wide_vectors", lambda: wide_vectors)


@needs_onednn
def test_auto_keeps_a_clear_win_once_two_runs_agree_and_reuses_it(monkeypatch, tmp_path, fresh_switch):
    memo = tmp_path / "cpu_kernels.json"
    new_process(monkeypatch, TORCH_WINS)
    assert select_cpu_kernels("auto", memo=memo)[0] == "torch"  # one clear win: this run's choice, not kept yet
    assert memo_module.recall(memo) is None
    new_process(monkeypatch, TORCH_WINS)
    kernels, why = select_cpu_kernels("auto", memo=memo)
    assert kernels == "torch" and why.endswith("; kept for this machine: 2 runs in a row agree")
    new_process(monkeypatch, None)
    kernels, why = select_cpu_kernels("auto", memo=memo)
    assert kernels == "torch" and why.startswith("auto, as settled on this machine before by 2 runs in a row (")
    memo.write_text("{not json")  # a damaged memo only costs new measurements
    new_process(monkeypatch, ONEDNN_WINS)
    assert select_cpu_kernels("auto", memo=memo)[0] == "onednn"


@needs_onednn
def test_a_tie_or_a_disagreement_is_not_kept_and_starts_the_count_again(monkeypatch, tmp_path, fresh_switch):
    memo = tmp_path / "cpu_kernels.json"
    new_process(monkeypatch, TIE, wide_vectors=False)
    kernels, why = select_cpu_kernels("auto", memo=memo)
    assert kernels == "torch" and why.endswith("; not kept: a tie is measured again next run")
    assert not memo.exists()  # nothing to keep, nothing written
    for times, expected in [(ONEDNN_WINS, "onednn"), (TIE, "onednn"), (ONEDNN_WINS, "onednn"),
                            (TORCH_WINS, "torch"), (ONEDNN_WINS, "onednn")]:
        new_process(monkeypatch, times, wide_vectors=True)
        assert select_cpu_kernels("auto", memo=memo)[0] == expected
        assert memo_module.recall(memo) is None, times  # never two clear wins in a row for the same kernels


def test_a_decision_kept_by_an_older_lmtrain_after_one_timing_is_measured_again(monkeypatch, tmp_path,
                                                                                fresh_switch):
    memo = tmp_path / "cpu_kernels.json"
    memo.write_text(json.dumps({memo_module.machine_key(): {"kernels": "torch",
                                                            "why": "17.3 ms with oneDNN, 15.2 ms with torch"}}))
    assert memo_module.recall(memo) is None


@needs_onednn
def test_the_log_line_gives_both_timings_the_rule_and_what_was_kept(monkeypatch, tmp_path, caplog, fresh_switch):
    new_process(monkeypatch, TIE, wide_vectors=True)
    with caplog.at_level(logging.INFO, logger=SELECT_LOG):
        use_cpu_kernels()
    assert ("CPU kernels: onednn (auto: best of 3 each: 1000.0 ms with oneDNN (median 1000.0), 1000.0 ms with torch "
            "(median 1020.0): a tie (best times within 5%), so by rule oneDNN where the CPU has AVX-512 or AMX, "
            "else torch (this CPU has them))") in caplog.text
    memo = tmp_path / "cpu_kernels.json"
    for _ in range(2):
        new_process(monkeypatch, ONEDNN_WINS)
        why = select_cpu_kernels("auto", memo=memo)[1]
    assert why == ("auto: best of 3 each: 1000.0 ms with oneDNN (median 1000.0), 3000.0 ms with torch (median "
                   "3000.0): oneDNN clearly faster; kept for this machine: 2 runs in a row agree")
    new_process(monkeypatch, None)
    assert select_cpu_kernels("auto", memo=memo)[1] == (
        "auto, as settled on this machine before by 2 runs in a row (best of 3 each: 1000.0 ms with oneDNN (median "
        "1000.0), 3000.0 ms with torch (median 3000.0): oneDNN clearly faster)")


def test_an_unwritable_memo_only_costs_keeping_the_decision(monkeypatch, tmp_path, fresh_switch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    memo = blocker / "cpu_kernels.json"  # its folder cannot be made
    assert memo_module.note_measurement(memo, "onednn", "why") == f"not kept: the memo {memo} cannot be written"
    assert blocker.read_text() == ""


def test_a_resumed_auto_run_takes_the_kernels_its_checkpoint_recorded(monkeypatch, tmp_path, fresh_switch):
    from types import SimpleNamespace

    from lmtrain.training import session

    new_process(monkeypatch, None)  # no measurement: the checkpoint decides
    monkeypatch.setattr(session, "read_model_meta", lambda path: {"cpu_kernels": "torch"})
    monkeypatch.setattr(session, "KERNEL_MEMO", tmp_path / "cpu_kernels.json")
    trainer = SimpleNamespace(device=torch.device("cpu"), dist=SimpleNamespace(enabled=False), model_meta={})
    kernels, why = session._put_kernels_in_force(trainer, "auto", tmp_path / "step-1")
    assert (kernels, why) == ("torch", "as the resumed run started (trainer.cpu_kernels=torch)")
    assert trainer.model_meta["cpu_kernels"] == "torch" and not (tmp_path / "cpu_kernels.json").exists()
