"""Attention with the cheaper dropout mask on CPU: SDPA's math; `attend` keeps SDPA where that path does not apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lmtrain.kernels.cpu.attention as cpu_attention
from lmtrain.kernels import attend, cpu_kernels
from lmtrain.kernels.cpu.attention import attend_with_cheap_dropout
from lmtrain.kernels.cpu.dropout import cheap_dropout


def qkv(seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [torch.randn(2, 3, 10, 8, requires_grad=True) for _ in range(3)]


def padding_mask() -> torch.Tensor:
    mask = torch.ones(2, 1, 1, 10, dtype=torch.bool)  # (B, 1, 1, Tk)
    mask[1, ..., 7:] = False
    return mask


@pytest.mark.parametrize("is_causal, padded", [(True, False), (False, False), (False, True)])
def test_without_the_dropout_mask_it_is_sdpas_math(monkeypatch, is_causal, padded):
    monkeypatch.setattr(cpu_attention, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool))
    monkeypatch.setattr(cpu_attention, "kept_share", lambda p: 1.0)  # keep every weight, unscaled
    monkeypatch.setattr(cpu_attention, "keep_factors", lambda shape, p, device: torch.ones(shape))
    ours_in, sdpa_in = qkv(), qkv()
    mask = padding_mask() if padded else None
    ours = attend_with_cheap_dropout(*ours_in, is_causal, 0.1, mask)
    theirs = F.scaled_dot_product_attention(*sdpa_in, attn_mask=mask, is_causal=is_causal)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    ours.sum().backward()
    theirs.sum().backward()
    for a, b in zip(ours_in, sdpa_in):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)


def test_dropout_is_drawn_reproducibly_and_scales_kept_weights():
    q, k, v = qkv()
    torch.manual_seed(1)
    first = attend_with_cheap_dropout(q, k, v, True, 0.5)
    torch.manual_seed(1)
    again = attend_with_cheap_dropout(q, k, v, True, 0.5)
    plain = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.equal(first, again)
    assert not torch.allclose(first, plain, atol=1e-3)
    # the first query sees only itself: its one weight is either dropped (0) or doubled (2 v_0)
    first_row, v0 = first[:, :, 0], v[:, :, 0]
    assert torch.all(torch.isclose(first_row, 2 * v0, atol=1e-5).all(-1) | (first_row == 0).all(-1))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_the_dropout_scale_on_the_values_is_dropout_on_the_weights(p):
    """Scaling the values by 1 / kept instead of the weights is the same math on the same mask."""
    q, k, v = qkv()
    torch.manual_seed(4)
    ours = attend_with_cheap_dropout(q, k, v, False, p)
    torch.manual_seed(4)
    weights = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    torch.testing.assert_close(ours, cheap_dropout(weights, p) @ v, atol=1e-6, rtol=1e-5)


def test_padded_keys_get_no_weight_even_where_dropout_keeps_all():
    q, k, v = qkv()
    mask = padding_mask()
    torch.manual_seed(3)
    before = attend_with_cheap_dropout(q, k, v, False, 0.2, mask)
    v2 = v.detach().clone()
    v2[1, :, 7:] = 1e6  # values behind the padding: they must not leak into any output
    torch.manual_seed(3)
    after = attend_with_cheap_dropout(q, k, v2, False, 0.2, mask)
    assert torch.equal(before, after)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
@pytest.mark.parametrize("shape", [(2, 1, 1, 10), (2, 1, 10, 10)], ids=["key padding", "per query"])
def test_boolean_masks_take_the_cheaper_dropout_other_masks_keep_sdpa(shape):
    q, k, v = qkv()
    mask = torch.ones(2, 1, 10, 10, dtype=torch.bool).tril()[:, :, : shape[2]]  # (B, 1, Tq or 1, Tk)
    torch.manual_seed(2)
    with cpu_kernels("onednn"):
        ours = attend(q, k, v, mask, False, 0.3)
    torch.manual_seed(2)
    assert torch.equal(ours, attend_with_cheap_dropout(q, k, v, False, 0.3, mask))
    for other in (mask.expand(2, 3, 10, 10), torch.zeros(2, 1, 10, 10)):  # per-head, float: SDPA's own
        torch.manual_seed(2)
        with cpu_kernels("onednn"):
            ours = attend(q, k, v, other, False, 0.3)
        torch.manual_seed(2)
        assert torch.equal(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=other, dropout_p=0.3))


def test_a_per_query_mask_is_sdpas_math_and_a_fully_masked_query_gives_no_nan(monkeypatch):
    monkeypatch.setattr(cpu_attention, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool))
    monkeypatch.setattr(cpu_attention, "kept_share", lambda p: 1.0)  # keep every weight, unscaled
    monkeypatch.setattr(cpu_attention, "keep_factors", lambda shape, p, device: torch.ones(shape))
    ours_in, sdpa_in = qkv(), qkv()
    mask = torch.rand(2, 1, 10, 10, generator=torch.Generator().manual_seed(4)) < 0.5
    mask |= torch.eye(10, dtype=torch.bool)  # every query sees itself, as lmtrain's (Tq, Tk) masks do
    ours = attend_with_cheap_dropout(*ours_in, False, 0.1, mask)
    theirs = F.scaled_dot_product_attention(*sdpa_in, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    mask[1, 0, 4] = False  # one query sees no key at all: no NaN in its output or in any gradient
    out = attend_with_cheap_dropout(*ours_in, False, 0.1, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in ours_in)


def fused_qkv_heads(seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A fused (B, T, 3D) projection output and its (B, H, T, Dh) query, key and value views, as layers pass them."""
    torch.manual_seed(seed)
    fused = torch.randn(2, 10, 3 * 3 * 8, requires_grad=True)  # B=2, T=10, H=3, Dh=8
    heads = fused.view(2, 10, 3, 3, 8).unbind(2)
    return fused, [t.transpose(1, 2) for t in heads]


@pytest.mark.parametrize("one_call", [True, False], ids=["one call", "head by head"])
@pytest.mark.parametrize("is_causal, mask_kind", [(True, None), (False, None), (False, "keys"), (False, "per query")])
def test_the_written_out_backward_is_autograds_on_the_same_dropout(monkeypatch, is_causal, mask_kind, one_call):
    """fp32 takes the forward and backward written out; the composed ops (what bf16 runs) give the same values."""
    monkeypatch.setattr(cpu_attention, "ONE_CALL_SCORES", 10 * 10 if one_call else 0)
    products: list[int] = []  # the written-out path's baddbmm calls
    baddbmm = torch.baddbmm
    monkeypatch.setattr(torch, "baddbmm", lambda *a, **kw: products.append(1) or baddbmm(*a, **kw))
    mask = {"keys": padding_mask(), "per query": torch.ones(2, 1, 10, 10, dtype=torch.bool).tril(), None: None}[
        mask_kind
    ]
    grad_out = torch.randn(2, 3, 10, 8, generator=torch.Generator().manual_seed(9))
    results = []
    for written_out in (True, False):
        monkeypatch.setattr(cpu_attention, "_writes_its_own_gradients", lambda *tensors, on=written_out: on)
        fused, (q, k, v) = fused_qkv_heads(seed=5)
        torch.manual_seed(6)
        out = attend_with_cheap_dropout(q, k, v, is_causal, 0.3, mask)
        out.backward(grad_out)
        results.append((out.detach(), fused.grad))
        plain = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
    (out_a, grad_a), (out_b, grad_b) = results
    assert len(products) == (6 if one_call else 6 * 3)  # 2 products forward, 4 backward; per head: 3 heads
    assert not torch.allclose(out_a, plain, atol=1e-3)  # dropout dropped something
    torch.testing.assert_close(out_a, out_b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad_a, grad_b, atol=1e-6, rtol=1e-5)


def test_bf16_and_autocast_take_the_composed_ops_with_the_same_mask():
    _, (q, k, v) = fused_qkv_heads(seed=7)
    torch.manual_seed(8)
    fp32 = attend_with_cheap_dropout(q, k, v, False, 0.2)
    torch.manual_seed(8)
    bf16 = attend_with_cheap_dropout(*(t.bfloat16() for t in (q, k, v)), False, 0.2)
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), fp32, atol=0.05, rtol=0.05)  # bf16 rounding; same dropped weights


@pytest.mark.parametrize("one_call", [True, False], ids=["one call", "head by head"])
@pytest.mark.parametrize("per_query_mask", [False, True])
def test_fewer_queries_than_keys_as_the_last_block_reads_them(monkeypatch, per_query_mask, one_call):
    """The last block at the read positions only (and cross-attention) attends from Tq < Tk queries."""
    monkeypatch.setattr(cpu_attention, "ONE_CALL_SCORES", 4 * 10 if one_call else 0)
    torch.manual_seed(10)
    q_in = torch.randn(2, 3, 4, 8, requires_grad=True)  # (B, H, Tq, Dh)
    kv_in = torch.randn(2, 10, 2, 3, 8, requires_grad=True)  # (B, Tk, 2, H, Dh), as a fused K/V projection
    mask = padding_mask()
    if per_query_mask:
        mask = torch.rand(2, 1, 4, 10, generator=torch.Generator().manual_seed(12)) < 0.7
        mask[..., 0] = True  # every query sees a key
    grad_out = torch.randn(2, 3, 4, 8)
    results = []
    for written_out in (True, False):
        monkeypatch.setattr(cpu_attention, "_writes_its_own_gradients", lambda *tensors, on=written_out: on)
        q, kv = q_in.detach().requires_grad_(), kv_in.detach().requires_grad_()
        k, v = (t.transpose(1, 2) for t in kv.unbind(2))
        torch.manual_seed(11)
        out = attend_with_cheap_dropout(q, k, v, False, 0.25, mask)
        out.backward(grad_out)
        results.append((out.detach(), q.grad, kv.grad))
    for written, composed in zip(*results):
        torch.testing.assert_close(written, composed, atol=1e-6, rtol=1e-5)
