"""The oneDNN-backed linear layer: same values and gradients as `F.linear`, and its fallbacks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lmtrain.models.linear as linear_module
from lmtrain.models.linear import MIN_ROWS, Linear, linear, uses_onednn

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def grads(fn, x, weight, bias):
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias) if t is not None]
    out = fn(*leaves) if bias is not None else fn(*leaves, None)
    torch.manual_seed(1)
    out.backward(torch.randn_like(out))
    return out.detach(), [t.grad for t in leaves]


@needs_onednn
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("out_features", [40, 16])  # wider and narrower than the input: both weight-gradient orders
def test_values_and_gradients_match_f_linear(with_bias, out_features):
    torch.manual_seed(0)
    x = torch.randn(4, 50, 24)[:, 1:]  # a strided (non-contiguous) batch of 196 rows
    weight, bias = torch.randn(out_features, 24), (torch.randn(out_features) if with_bias else None)
    assert uses_onednn(x, weight)
    ours, our_grads = grads(linear, x, weight, bias)
    theirs, their_grads = grads(F.linear, x, weight, bias)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    for a, b in zip(our_grads, their_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@needs_onednn
def test_frozen_weight_gets_no_gradient_and_input_still_does():
    layer = Linear(16, 8)
    layer.weight.requires_grad_(False)
    x = torch.randn(MIN_ROWS, 16, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is None
    torch.testing.assert_close(layer.bias.grad, torch.full((8,), float(MIN_ROWS)))
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(MIN_ROWS, 16), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_without_gradients_no_graph_is_recorded(monkeypatch):
    calls = []
    product = linear_module.onednn_product
    monkeypatch.setattr(linear_module, "onednn_product", lambda *args: calls.append(1) or product(*args))
    layer = Linear(16, 8)
    with torch.no_grad():
        out = layer(torch.randn(2, MIN_ROWS, 16))
    assert out.grad_fn is None and out.shape == (2, MIN_ROWS, 8)
    assert calls == [1]  # the oneDNN product itself, not F.linear


def test_falls_back_where_f_linear_is_the_better_or_only_choice(monkeypatch):
    weight = torch.randn(8, 16)
    many = torch.randn(MIN_ROWS, 16)
    assert not uses_onednn(torch.randn(MIN_ROWS - 1, 16), weight)  # decoding-sized: call overhead wins
    assert not uses_onednn(many.double(), weight.double())
    assert not uses_onednn(torch.randn(16), weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not uses_onednn(many, weight)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # the user's switch
    assert not uses_onednn(many, weight)
    torch.testing.assert_close(linear(many, weight), F.linear(many, weight), atol=0, rtol=0)


def test_is_an_nn_linear_with_the_same_parameters():
    layer = Linear(6, 3)
    assert isinstance(layer, nn.Linear)
    assert list(layer.state_dict()) == ["weight", "bias"]
