"""``auto``'s choice kept per machine: the first run's, corrected only by repeated clear wins in later runs.

Each "run" here is a new process on the same machine (the switch reset), whose start-up check
measures the fake timings given.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from lmtrain.kernels import select as select_module
from lmtrain.kernels import select_cpu_kernels
from lmtrain.kernels.memo import machine_key
from lmtrain.kernels.probe import ProbeTimes

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
pytestmark = needs_onednn
ONEDNN_WINS = ProbeTimes(onednn_s=0.010, matmul_s=0.015, rounds=8)
MATMUL_WINS = ProbeTimes(onednn_s=0.0173, matmul_s=0.0152, rounds=8)  # the reported busy timing
TIE = ProbeTimes(onednn_s=0.0100, matmul_s=0.0102, rounds=8)
TIMED = "linear products forward and backward, 1024 and 400 rows, best of 8 each"


def run(monkeypatch, memo, times: ProbeTimes | None, wide_vectors: bool = True, measure: bool = True):
    """A new process that selects ``auto`` with ``memo``; its check measures ``times`` (None: it must not measure)."""

    def must_not_measure(backward=True):
        raise AssertionError("measured")

    monkeypatch.setitem(select_module._state, "auto", None)
    monkeypatch.setitem(select_module._state, "active", None)
    monkeypatch.setattr(
        select_module, "time_kernels", must_not_measure if times is None else lambda backward=True: times
    )
    monkeypatch.setattr(select_module, "cpu_has_wide_vectors", lambda: wide_vectors, raising=False)
    return select_cpu_kernels("auto", memo=memo, measure=measure)


def kept(memo) -> dict:
    return json.loads(memo.read_text())[machine_key()]


def test_a_busy_first_measurement_is_corrected_only_after_two_clear_wins_in_later_runs(monkeypatch, tmp_path):
    memo = tmp_path / "cpu_kernels.json"
    kernels = [run(monkeypatch, memo, MATMUL_WINS)[0]]  # the first run, on a busy machine, keeps torch
    for times in (ONEDNN_WINS, TIE, ONEDNN_WINS):  # a clear win, a tie, a second clear win
        kernels.append(run(monkeypatch, memo, times)[0])
    assert kernels == ["torch-matmul"] * 4  # no run changes its kernels on its own measurement
    assert kept(memo)["kernels"] == "onednn"  # ... but the runs after the second clear win take oneDNN
    assert run(monkeypatch, memo, TIE)[0] == "onednn"


def test_a_clear_win_for_the_kept_side_clears_the_wins_against_it(monkeypatch, tmp_path):
    memo = tmp_path / "cpu_kernels.json"
    run(monkeypatch, memo, MATMUL_WINS)
    for times in (ONEDNN_WINS, MATMUL_WINS, ONEDNN_WINS):
        assert run(monkeypatch, memo, times)[0] == "torch-matmul"
    assert kept(memo)["kernels"] == "torch-matmul" and kept(memo)["challenges"] == 1


def test_after_four_checks_the_choice_is_settled_and_no_run_measures(monkeypatch, tmp_path, caplog):
    memo = tmp_path / "cpu_kernels.json"
    run(monkeypatch, memo, ONEDNN_WINS)
    for _ in range(4):
        run(monkeypatch, memo, TIE)
    kernels, why = run(monkeypatch, memo, None)
    assert kernels == "onednn" and why.endswith(", confirmed by 4 later checks")


@pytest.mark.parametrize("wide_vectors, expected", [(True, "onednn"), (False, "torch-matmul")])
def test_a_tie_in_the_first_run_is_settled_by_the_rule_and_kept(monkeypatch, tmp_path, wide_vectors, expected):
    memo = tmp_path / "cpu_kernels.json"
    kernels, why = run(monkeypatch, memo, TIE, wide_vectors)
    cpu = "has" if wide_vectors else "lacks"
    assert kernels == expected
    assert why == (
        f"auto: measured 10.0 ms with oneDNN vs 10.2 ms with torch-matmul ({TIMED}): a tie (within 5%), "
        f"so by rule oneDNN where the CPU has AVX-512 or AMX, else torch-matmul (this CPU {cpu} them); "
        f"kept for this machine in {memo}"
    )
    assert run(monkeypatch, memo, ONEDNN_WINS if expected == "torch-matmul" else MATMUL_WINS)[0] == expected


def test_the_log_line_says_why_each_run_took_its_kernels(monkeypatch, tmp_path):
    memo = tmp_path / "cpu_kernels.json"
    monkeypatch.setattr(select_module, "_today", lambda: "2026-12-06")
    first = run(monkeypatch, memo, MATMUL_WINS)[1]
    assert first == (
        f"auto: measured 17.3 ms with oneDNN vs 15.2 ms with torch-matmul ({TIMED}): torch-matmul faster by 14%; "
        f"kept for this machine in {memo}"
    )
    second = run(monkeypatch, memo, ONEDNN_WINS)[1]
    kept_since = (
        "auto: kept for this machine since 2026-12-06 (measured 17.3 ms with oneDNN vs 15.2 ms with torch-matmul "
        f"({TIMED}): torch-matmul faster by 14%)"
    )
    assert second == (
        f"{kept_since}; check 1 of 4: measured 10.0 ms with oneDNN vs 15.0 ms with torch-matmul ({TIMED})"
        ": oneDNN faster by 50% (clear win 1 of the 2 in separate runs that switch the choice); "
        "this run keeps torch-matmul"
    )
    third = run(monkeypatch, memo, ONEDNN_WINS)[1]
    assert third.startswith(f"{kept_since}; check 2 of 4: ") and third.endswith(
        "(clear win 2 of the 2 in separate runs that switch the choice): the choice switches to onednn from the next "
        "run; this run keeps torch-matmul"
    )
    assert run(monkeypatch, memo, TIE)[1].startswith(
        "auto: kept for this machine since 2026-12-06 (switched after 2 clear wins in later runs, the last measured "
        f"10.0 ms with oneDNN vs 15.0 ms with torch-matmul ({TIMED}): oneDNN faster by 50%); check 1 of 4: "
    )


def test_the_other_processes_of_a_job_neither_measure_nor_write(monkeypatch, tmp_path):
    memo = tmp_path / "cpu_kernels.json"
    assert run(monkeypatch, memo, None, measure=False)[0] == "onednn" and not memo.exists()  # the rule, until told
    run(monkeypatch, memo, MATMUL_WINS)
    before = memo.read_text()
    assert run(monkeypatch, memo, None, measure=False)[0] == "torch-matmul" and memo.read_text() == before


def test_an_older_lmtrains_torch_entry_is_read_as_torch_matmul_and_checked_again(monkeypatch, tmp_path):
    memo = tmp_path / "cpu_kernels.json"
    older = {"kernels": "torch", "why": "auto: 17.3 ms with oneDNN, 15.2 ms with torch"}  # no date, counts, probe
    memo.write_text(json.dumps({machine_key(): older, "another machine": {"kernels": "onednn"}}))
    kernels, why = run(monkeypatch, memo, ONEDNN_WINS)
    assert kernels == "torch-matmul"  # the products that entry chose, with today's dropout
    assert why.startswith(
        "auto: kept for this machine by an earlier lmtrain (auto: 17.3 ms with oneDNN, 15.2 ms with torch; by an "
        "earlier check that timed each side's dropout too, as torch (the products of torch-matmul): checked again "
        "by the next runs); check 1 of 4: measured 10.0 ms with oneDNN"
    )
    assert kept(memo)["kernels"] == "torch-matmul" and kept(memo)["reviews"] == 1 and kept(memo)["probe"] == 2
    assert json.loads(memo.read_text())["another machine"] == {"kernels": "onednn"}


def test_a_settled_choice_of_the_earlier_check_is_checked_again_and_switched_by_two_clear_wins(monkeypatch, tmp_path):
    memo = tmp_path / "cpu_kernels.json"
    earlier = {"kernels": "onednn", "why": "measured ...", "decided": "2026-12-01", "reviews": 4, "challenges": 0}
    memo.write_text(json.dumps({machine_key(): earlier}))
    kernels = [run(monkeypatch, memo, MATMUL_WINS)[0] for _ in range(2)]
    assert kernels == ["onednn", "onednn"] and kept(memo)["kernels"] == "torch-matmul"
    assert run(monkeypatch, memo, TIE)[0] == "torch-matmul"


def test_an_entry_of_todays_check_naming_torch_is_measured_anew(monkeypatch, tmp_path, caplog):
    memo = tmp_path / "cpu_kernels.json"
    memo.write_text(json.dumps({machine_key(): {"kernels": "torch", "probe": 2}}))  # auto never keeps torch now
    with caplog.at_level(logging.WARNING, logger="lmtrain.kernels.select"):
        assert run(monkeypatch, memo, ONEDNN_WINS)[0] == "onednn"
    assert "names CPU kernels 'torch', which are none of onednn, torch-matmul" in caplog.text


def test_a_damaged_memo_is_neither_used_nor_overwritten_and_the_log_says_so(monkeypatch, tmp_path, caplog):
    memo = tmp_path / "cpu_kernels.json"
    memo.write_text('{"truncated": ')
    with caplog.at_level(logging.WARNING, logger="lmtrain.kernels.select"):
        kernels, why = run(monkeypatch, memo, MATMUL_WINS)
    assert kernels == "torch-matmul" and memo.read_text() == '{"truncated": '
    assert (
        f"The memo of trainer.cpu_kernels=auto, {memo}, is not used as it is: it cannot be read as JSON" in caplog.text
    )
    assert "delete the file, or set trainer.cpu_kernels=onednn or trainer.cpu_kernels=torch-matmul." in caplog.text
    assert why.endswith(
        f"not kept in {memo}: it cannot be read as JSON (JSONDecodeError: Expecting value: line 1 column 15 (char 14))"
    )


def test_a_symlinked_memo_is_not_followed(monkeypatch, tmp_path, caplog):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({machine_key(): {"kernels": "torch"}}))
    memo = tmp_path / "cpu_kernels.json"
    memo.symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="lmtrain.kernels.select"):
        assert run(monkeypatch, memo, ONEDNN_WINS)[0] == "onednn"
    assert "it is a symbolic link, which lmtrain neither follows nor replaces" in caplog.text
    assert memo.is_symlink() and json.loads(target.read_text()) == {machine_key(): {"kernels": "torch"}}


def test_an_entry_naming_unknown_kernels_is_measured_anew_and_replaced(monkeypatch, tmp_path, caplog):
    memo = tmp_path / "cpu_kernels.json"
    memo.write_text(json.dumps({machine_key(): {"kernels": "mkl", "reviews": "many"}}))
    with caplog.at_level(logging.WARNING, logger="lmtrain.kernels.select"):
        assert run(monkeypatch, memo, MATMUL_WINS)[0] == "torch-matmul"
    assert (
        "names CPU kernels 'mkl', which are none of onednn, torch-matmul; the entry is measured anew and replaced"
        in caplog.text
    )
    assert kept(memo)["kernels"] == "torch-matmul"


def test_an_unwritable_memo_only_costs_keeping_the_choice(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    memo = blocker / "cpu_kernels.json"  # its folder cannot be made
    kernels, why = run(monkeypatch, memo, ONEDNN_WINS)
    assert kernels == "onednn" and f"; not kept in {memo}: it cannot be written" in why and blocker.read_text() == ""


def test_timings_alternate_after_a_warm_up_and_stop_at_the_budget():
    from itertools import count

    from lmtrain.kernels.probe import measure_alternately

    order: list[str] = []
    clock = count(0.0, 0.1)  # every look at the clock is 0.1 s later

    def step(name: str, seconds: float):
        return lambda: order.append(name) or seconds

    timings = measure_alternately(
        {"a": step("a", 1.0), "b": step("b", 2.0)}, rounds=8, min_rounds=3, budget_s=0.05, clock=lambda: next(clock)
    )
    assert order == [
        "a",
        "b",  # warm-up, not kept
        "a",
        "b",
        "b",
        "a",
        "a",
        "b",
    ]  # three rounds, the order flipping each round
    assert timings == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
