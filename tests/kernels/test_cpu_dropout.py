"""The cheaper CPU dropout mask: drop rate, scaling, gradients, reproducibility; where dropout is a no-op."""

from __future__ import annotations

import pytest
import torch

from lmtrain.kernels import Dropout, dropout
from lmtrain.kernels.cpu.dropout import cheap_dropout, keep_factors, keep_mask


def test_drops_the_asked_share_and_scales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    out = cheap_dropout(x, 0.1)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002  # 1e6 elements: the standard error is 3e-4
    kept_share = 1 - round(0.1 * 65536) / 65536
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / kept_share))
    assert abs(out.mean().item() - 1.0) < 0.003  # expectation kept


def test_mask_bits_are_uniform_so_any_rate_is_hit():
    torch.manual_seed(1)
    for p in (0.02, 0.5, 0.9):
        kept = keep_mask(torch.Size([400_000]), p, torch.device("cpu")).float().mean().item()
        assert abs(kept - (1 - p)) < 0.004, p


def test_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)  # an element count not divisible by 4
    out = cheap_dropout(x, 0.25)
    out.backward(torch.ones_like(out))
    kept = out.detach() != 0
    scale = 1 / (1 - round(0.25 * 65536) / 65536)
    torch.testing.assert_close(x.grad, kept.float() * scale)
    torch.testing.assert_close(out.detach(), x.detach() * kept * scale)


def test_same_seed_same_mask_and_next_draw_differs():
    x = torch.ones(5000)
    torch.manual_seed(3)
    first, second = cheap_dropout(x, 0.3), cheap_dropout(x, 0.3)
    torch.manual_seed(3)
    again = cheap_dropout(x, 0.3)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


def test_no_op_in_eval_or_without_dropout_and_all_dropped_at_one():
    x = torch.randn(10, 10)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert torch.count_nonzero(dropout(x, 1.0, training=True)) == 0
    module = Dropout(0.5).eval()
    assert module(x) is x


def test_keeps_bf16_and_shape():
    torch.manual_seed(4)
    x = torch.randn(3, 7, 11, dtype=torch.bfloat16)
    out = cheap_dropout(x, 0.1)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape


def test_bad_probability_is_refused_with_its_value():
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        Dropout(1.5)


def test_mask_is_the_16_bit_slices_of_seeded_64_bit_draws():
    torch.manual_seed(5)
    mask = keep_mask(torch.Size([10]), 0.25, torch.device("cpu"))
    torch.manual_seed(5)
    bits = torch.empty(3, dtype=torch.int64).random_(-(1 << 63), None).view(torch.int16)[:10]
    assert torch.equal(mask, bits >= 16384 - 32768)  # 0.25 of 65536 levels dropped: the lowest 16384


def test_probability_rounding_up_to_one_drops_everything():
    x = torch.randn(100)
    assert torch.count_nonzero(cheap_dropout(x, 1 - 1e-6)) == 0  # rounds to 65536/65536


def test_fp32_keep_factors_are_the_boolean_mask_of_the_same_draws():
    torch.manual_seed(6)
    factors = keep_factors(torch.Size([7, 33]), 0.3, torch.device("cpu"), kept_value=2.5)
    torch.manual_seed(6)
    mask = keep_mask(torch.Size([7, 33]), 0.3, torch.device("cpu"))
    assert factors.dtype == torch.float32
    assert torch.equal(factors, mask.float() * 2.5)


def test_fp32_and_bf16_drop_the_same_elements():
    """fp32 keeps its mask as factors, bf16 as booleans: the same draws, the same elements dropped."""
    x = torch.ones(40, 50)
    torch.manual_seed(7)
    fp32 = cheap_dropout(x, 0.2)
    torch.manual_seed(7)
    bf16 = cheap_dropout(x.bfloat16(), 0.2)
    assert torch.equal(fp32 == 0, bf16 == 0)
