"""``auto``'s decision from fake timings: alternating rounds, each side's best time, a clear win or a tie's rule."""

from __future__ import annotations

from itertools import count

import pytest

from lmtrain.kernels.decision import RULE, decide
from lmtrain.kernels.probe import ProbeTimes, measure_alternately

MS = 1e-3


def times(onednn_ms: list[float], torch_ms: list[float]) -> ProbeTimes:
    return ProbeTimes(onednn=tuple(t * MS for t in onednn_ms), torch=tuple(t * MS for t in torch_ms))


def test_a_load_spike_on_one_side_does_not_decide():
    # the reported case: one timing of oneDNN under load (17.3 ms) against torch's 15.2 ms picked torch;
    # its other rounds show oneDNN's true 13 ms, and the best time sees through the spike
    decision = decide(times([17.3, 13.0, 13.1, 25.0, 13.0, 13.2], [15.2, 15.3, 15.2, 15.4, 15.2, 15.3]), False)
    assert (decision.kernels, decision.clear_win) == ("onednn", True)
    assert "oneDNN clearly faster" in decision.why


def test_load_on_most_rounds_of_one_side_is_a_tie_not_a_win():
    # oneDNN's best beats torch's, but its median is loaded past torch's best: the spreads overlap
    decision = decide(times([10.0, 22.0, 21.0, 23.0, 24.0], [12.0, 12.1, 12.2, 12.0, 12.1]), wide_vectors=False)
    assert (decision.kernels, decision.clear_win) == ("torch", False)
    assert "a tie (spreads overlap), so by rule" in decision.why


@pytest.mark.parametrize("wide_vectors, expected", [(True, "onednn"), (False, "torch")])
def test_best_times_within_noise_are_a_tie_settled_by_the_rule(wide_vectors, expected):
    decision = decide(times([10.0, 10.1, 10.2], [10.3, 10.4, 10.3]), wide_vectors)
    assert (decision.kernels, decision.clear_win) == (expected, False)
    cpu = "has" if wide_vectors else "lacks"
    assert decision.why.endswith(f"a tie (best times within 5%), so by rule {RULE} (this CPU {cpu} them)")


@pytest.mark.parametrize("onednn_ms, torch_ms, expected", [([6.6, 6.7, 6.8], [8.0, 8.1, 8.0], "onednn"),
                                                          ([9.0, 9.1, 9.0], [7.0, 7.2, 7.1], "torch")])
def test_a_clear_win_decides_whatever_the_rule_says(onednn_ms, torch_ms, expected):
    for wide_vectors in (True, False):
        decision = decide(times(onednn_ms, torch_ms), wide_vectors)
        assert (decision.kernels, decision.clear_win) == (expected, True)


def test_the_reason_names_both_best_times_and_medians():
    decision = decide(times([6.6, 6.7, 6.9], [8.0, 8.1, 8.2]), True)
    assert decision.why == ("best of 3 each: 6.6 ms with oneDNN (median 6.7), 8.0 ms with torch (median 8.1): "
                            "oneDNN clearly faster")


def test_timings_alternate_after_a_warm_up_and_stop_at_the_budget():
    order: list[str] = []
    clock = count(0.0, 0.1)  # every look at the clock is 0.1 s later

    def step(name: str, seconds: float):
        return lambda: order.append(name) or seconds

    timings = measure_alternately({"a": step("a", 1.0), "b": step("b", 2.0)}, rounds=8, min_rounds=3,
                                  budget_s=0.05, clock=lambda: next(clock))
    assert order == ["a", "b",  # warm-up, not kept
                     "a", "b", "b", "a", "a", "b"]  # three rounds, the order flipping each round
    assert timings == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}


def test_timings_take_every_round_within_the_budget():
    timings = measure_alternately({"a": lambda: 1.0, "b": lambda: 2.0}, rounds=8, min_rounds=3, budget_s=10.0,
                                  clock=lambda: 0.0)
    assert len(timings["a"]) == len(timings["b"]) == 8
