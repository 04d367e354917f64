"""The chunked linear + cross-entropy equals ``F.linear`` + ``F.cross_entropy``: loss, argmax count, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.kernels import cpu_kernels
from lmtrain.objectives.linear_cross_entropy import linear_cross_entropy

N, D, V = 37, 16, 50


def _inputs(with_bias: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, D, generator=g).requires_grad_()
    weight = torch.randn(V, D, generator=g).requires_grad_()
    bias = torch.randn(V, generator=g).requires_grad_() if with_bias else None
    targets = torch.randint(0, V, (N,), generator=g)
    targets[::5] = IGNORE_INDEX
    # some rows predicted right, so the argmax count is more than zero
    targets[1::4] = F.linear(hidden, weight, bias).argmax(-1)[1::4]
    return hidden, weight, bias, targets


def _standard(hidden, weight, bias, targets):
    logits = F.linear(hidden, weight, bias).float()
    loss_sum = F.cross_entropy(logits, targets, reduction="sum", ignore_index=IGNORE_INDEX)
    return loss_sum, (logits.argmax(-1) == targets).sum()


def _params(hidden, weight, bias):
    return [t for t in (hidden, weight, bias) if t is not None]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("chunk_rows", [8, 37, 64])  # divides N unevenly, N exactly, more than N
def test_loss_count_and_gradients_equal_the_standard_path(chunk_rows, with_bias):
    hidden, weight, bias, targets = _inputs(with_bias)
    loss_sum, correct = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=chunk_rows)
    grads = torch.autograd.grad(loss_sum / 7, _params(hidden, weight, bias))  # an upstream factor
    ref_sum, ref_correct = _standard(hidden, weight, bias, targets)
    ref_grads = torch.autograd.grad(ref_sum / 7, _params(hidden, weight, bias))
    torch.testing.assert_close(loss_sum, ref_sum, rtol=1e-6, atol=1e-4)
    assert correct.dtype == torch.long and correct.item() == ref_correct.item() > 0
    for grad, ref, name in zip(grads, ref_grads, ("hidden", "weight", "bias")):
        torch.testing.assert_close(grad, ref, rtol=1e-5, atol=1e-6, msg=name)


def test_ignored_rows_get_no_gradient_and_count_for_nothing():
    hidden, weight, bias, targets = _inputs()
    targets[:] = IGNORE_INDEX
    targets[3] = 4
    loss_sum, _ = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=8)
    loss_sum.backward()
    assert torch.all(hidden.grad[targets == IGNORE_INDEX] == 0) and hidden.grad[3].abs().sum() > 0
    alone, _ = _standard(hidden[3:4], weight, bias, targets[3:4])
    torch.testing.assert_close(loss_sum, alone)


def test_only_the_inputs_that_need_gradients_get_them():
    hidden, weight, bias, targets = _inputs()
    weight.requires_grad_(False)
    loss_sum, _ = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=8)
    loss_sum.backward()
    assert weight.grad is None and hidden.grad is not None and bias.grad is not None


def test_without_gradients_the_loss_and_count_are_the_same():
    hidden, weight, bias, targets = _inputs()
    with torch.no_grad():
        loss_sum, correct = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=8)
        ref_sum, ref_correct = _standard(hidden, weight, bias, targets)
    assert loss_sum.grad_fn is None
    torch.testing.assert_close(loss_sum, ref_sum, rtol=1e-6, atol=1e-4)
    assert correct.item() == ref_correct.item()


def test_gradients_pass_gradcheck_in_float64():
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True) for shape in ((9, 4), (7, 4), (7,))
    ]
    targets = torch.randint(0, 7, (9,), generator=g)
    targets[2] = IGNORE_INDEX
    assert torch.autograd.gradcheck(lambda h, w, b: linear_cross_entropy(h, w, b, targets, chunk_rows=4)[0], inputs)


def test_bf16_autocast_matches_the_standard_path_and_keeps_input_dtypes():
    hidden, weight, bias, targets = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_sum, correct = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=8)
        ref_sum, ref_correct = _standard(hidden, weight, bias, targets)
    grads = torch.autograd.grad(loss_sum, _params(hidden, weight, bias))
    ref_grads = torch.autograd.grad(ref_sum, _params(hidden, weight, bias))
    assert loss_sum.dtype == torch.float32
    torch.testing.assert_close(loss_sum, ref_sum, rtol=1e-3, atol=1e-3)  # the same bf16 logits, so nearly equal
    assert correct.item() == ref_correct.item()
    for grad, ref, name in zip(grads, ref_grads, ("hidden", "weight", "bias")):
        assert grad.dtype == torch.float32, name
        torch.testing.assert_close(grad, ref, rtol=2e-2, atol=2e-2, msg=name)  # bf16 rounding


def test_no_rows_give_a_zero_loss():
    hidden, weight, bias, targets = _inputs()
    loss_sum, correct = linear_cross_entropy(hidden[:0], weight, bias, targets[:0])
    loss_sum.backward()
    assert loss_sum.item() == 0 and correct.item() == 0 and torch.all(weight.grad == 0)


def test_a_retained_graph_gives_the_same_gradients_at_every_backward():
    # backward scales the saved gradients in place the first time (CPU): later ones must undo that factor
    hidden, weight, bias, targets = _inputs()
    loss_sum, _ = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=8)
    first = torch.autograd.grad(loss_sum / 7, _params(hidden, weight, bias), retain_graph=True)
    second = torch.autograd.grad(loss_sum * 3, _params(hidden, weight, bias))
    ref_sum, _ = _standard(hidden, weight, bias, targets)
    ref_grads = torch.autograd.grad(ref_sum, _params(hidden, weight, bias))
    for a, b, ref, name in zip(first, second, ref_grads, ("hidden", "weight", "bias")):
        torch.testing.assert_close(a, ref / 7, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(b, ref * 3, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("kernels", ["onednn", "torch-matmul"])
def test_each_kernel_set_gives_the_standard_gradients(kernels):
    if kernels == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("PyTorch built without oneDNN")
    hidden, weight, bias, targets = _inputs()
    with cpu_kernels(kernels):
        loss_sum, _ = linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=16)
    grads = torch.autograd.grad(loss_sum, _params(hidden, weight, bias))
    ref_sum, _ = _standard(hidden, weight, bias, targets)
    ref_grads = torch.autograd.grad(ref_sum, _params(hidden, weight, bias))
    for grad, ref, name in zip(grads, ref_grads, ("hidden", "weight", "bias")):
        assert grad.is_contiguous(), name
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4, msg=name)
