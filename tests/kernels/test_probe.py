"""The start-up check times the linear products alone on both sides: forward and both backward products in a
process that trains, the forward ones in one that does not."""

from __future__ import annotations

import pytest
import torch

from lmtrain.kernels import probe
from tests.kernels.op_patches import counting_onednn_op


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
def test_the_check_times_forward_and_weight_gradient_products_and_draws_no_random_numbers(monkeypatch):
    monkeypatch.setattr(probe, "ROWS", (24, 10))
    monkeypatch.setattr(probe, "D_MODEL", 8)
    monkeypatch.setattr(probe, "D_FF", 16)
    calls = counting_onednn_op(monkeypatch)
    torch.manual_seed(5)
    times = probe.time_kernels()
    after_check = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_check, torch.rand(3))  # the run's random stream is as it was
    assert times.onednn_s > 0 and times.matmul_s > 0 and probe.MIN_ROUNDS <= times.rounds <= probe.ROUNDS
    # per step two forward products, two input-gradient and two weight-gradient products; per row count
    # one warm-up step and one step each round
    assert len(calls) == 6 * (1 + times.rounds) * 2
    assert "(linear products forward and backward, 24 and 10 rows, best of" in times.describe()


def test_without_training_the_check_times_the_forward_products_only(monkeypatch):
    monkeypatch.setattr(probe, "ROWS", (24, 10))
    monkeypatch.setattr(probe, "D_MODEL", 8)
    monkeypatch.setattr(probe, "D_FF", 16)
    calls = counting_onednn_op(monkeypatch)
    times = probe.time_kernels(backward=False)
    assert len(calls) == 2 * (1 + times.rounds) * 2  # two forward products per step
    assert "(linear products forward only, 24 and 10 rows, best of" in times.describe()


def test_the_onednn_check_passes_when_first_called_inside_a_bf16_autocast_block():
    """A script's first linear call may come under bf16 autocast: the check itself must run in fp32."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("PyTorch built without oneDNN")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        probe.check_onednn_ops()  # raised "Float did not match BFloat16" when its comparison ran under autocast
        assert torch.is_autocast_enabled("cpu"), "the check must leave the caller's autocast as it was"
