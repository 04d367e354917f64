"""The oneDNN linear product: same values and gradients as `F.linear`, and where it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.kernels import Linear, cpu_kernels, weight_gradient
from lmtrain.kernels.cpu.linear import MIN_ROWS, fits_onednn, onednn_linear
from tests.kernels.op_patches import counting_onednn_op

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
    assert fits_onednn(x, weight)
    ours, our_grads = grads(onednn_linear, x, weight, bias)
    theirs, their_grads = grads(F.linear, x, weight, bias)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    for a, b in zip(our_grads, their_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@needs_onednn
def test_frozen_weight_gets_no_gradient_and_input_still_does():
    layer = Linear(16, 8)
    layer.weight.requires_grad_(False)
    x = torch.randn(MIN_ROWS, 16, requires_grad=True)
    with cpu_kernels("onednn"):
        layer(x).sum().backward()
    assert layer.weight.grad is None
    torch.testing.assert_close(layer.bias.grad, torch.full((8,), float(MIN_ROWS)))
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(MIN_ROWS, 16), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_without_gradients_no_graph_is_recorded(monkeypatch):
    layer = Linear(16, 8)
    with cpu_kernels("onednn"), torch.no_grad():
        calls = counting_onednn_op(monkeypatch)  # after the selection's own check of the op
        out = layer(torch.randn(2, MIN_ROWS, 16))
    assert out.grad_fn is None and out.shape == (2, MIN_ROWS, 8)
    assert calls == [1]  # the oneDNN product itself, not F.linear


def test_applies_only_where_it_is_the_better_choice():
    weight = torch.randn(8, 16)
    many = torch.randn(MIN_ROWS, 16)
    assert fits_onednn(many, weight)
    assert not fits_onednn(torch.randn(MIN_ROWS - 1, 16), weight)  # decoding-sized: call overhead wins
    assert not fits_onednn(many.double(), weight.double())
    assert not fits_onednn(torch.randn(16), weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fits_onednn(many, weight)


def test_is_an_nn_linear_with_the_same_parameters():
    layer = Linear(6, 3)
    assert isinstance(layer, nn.Linear)
    assert list(layer.state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("kernels", ["onednn", "torch-matmul", "torch"])
@pytest.mark.parametrize("width", [40, 16])  # gradient wider and narrower than the input: both oneDNN orders
def test_weight_gradient_is_the_transposed_product_and_accumulates_in_place(kernels, width):
    if kernels == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("PyTorch built without oneDNN")
    torch.manual_seed(0)
    grad, x = torch.randn(30, width), torch.randn(30, 24)
    into = torch.randn(width, 24)
    expected = into + grad.t() @ x
    with cpu_kernels(kernels):
        product = weight_gradient(grad, x)
        summed = weight_gradient(grad, x, into)
    torch.testing.assert_close(product, grad.t() @ x, atol=1e-4, rtol=1e-4)
    assert summed is into
    torch.testing.assert_close(into, expected, atol=1e-4, rtol=1e-4)


def test_weight_gradient_of_a_strided_input_reaches_onednn_in_dense_rows(monkeypatch):
    # A pooled first token (hidden[:, 0], rows a whole sequence apart) took oneDNN ~14 ms where
    # dense rows take 0.08 ms: the NSP head's weight gradient cost 6% of a BERT-mini step.
    if not torch.backends.mkldnn.is_available():
        pytest.skip("PyTorch built without oneDNN")
    hidden = torch.randn(MIN_ROWS, 16, 24)
    layer = Linear(24, 24)
    pooled = hidden[:, 0].requires_grad_()
    operands: list[torch.Tensor] = []
    op = torch.ops.mkldnn._linear_pointwise
    with cpu_kernels("onednn"):
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *args: operands.extend(args[:2]) or op(*args))
        layer(pooled).square().sum().backward()
    assert len(operands) == 6  # forward, input gradient, weight gradient
    assert all(a.is_contiguous() or a.t().is_contiguous() for a in operands[4:])  # the weight gradient's
    torch.testing.assert_close(layer.weight.grad, 2 * (layer(pooled).t() @ pooled).detach(), atol=1e-4, rtol=1e-4)
