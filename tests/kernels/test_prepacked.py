"""Prepacked inference weights: same outputs and tokens, swapped in only around model calls, off where
they must be, repacked when the weights change."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from torch import nn

import lmtrain.kernels.cpu.prepacked as prepacked
import lmtrain.kernels.ops as kernel_ops
from lmtrain.generation import Sampling, generate, generate_stream
from lmtrain.kernels import cpu_kernels
from lmtrain.kernels.cpu.prepacked import PrepackedLinears
from lmtrain.models.heads import CausalLMHead
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
GREEDY = Sampling(greedy=True)


def gpt(seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    spec = TransformerSpec(
        vocab_size=97,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=64,
        max_positions=64,
        dropout=0.0,
        attention_dropout=0.0,
        causal=True,
        norm="pre",
        segment_vocab_size=0,
        embedding_norm=False,
        final_norm=True,
        activation="gelu_tanh",
        layer_norm_eps=1e-5,
    )
    return LanguageModel(spec, ["lm"]).eval()


def patched(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if "forward" in m.__dict__]


def logits(model: LanguageModel, ids: torch.Tensor) -> torch.Tensor:
    return model.heads["lm"](model.backbone(ids))


@needs_onednn
@torch.no_grad()
def test_logits_match_and_forwards_are_restored():
    model = gpt()
    ids = torch.randint(0, 97, (3, 10))
    expected = logits(model, ids)
    with PrepackedLinears(model, rows_hint=3, projection_types=(CausalLMHead,)).applied() as packed:
        assert packed
        n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
        assert len(patched(model)) == n_linear + 1  # every linear layer and the tied LM head
        result = logits(model, ids)
    torch.testing.assert_close(result, expected, atol=1e-4, rtol=1e-4)
    assert patched(model) == []


@needs_onednn
@torch.no_grad()
def test_weights_changed_in_place_are_packed_again():
    model = gpt()
    weights = PrepackedLinears(model, rows_hint=2, projection_types=(CausalLMHead,))
    ids = torch.randint(0, 97, (2, 6))
    with weights.applied():
        logits(model, ids)
    model.backbone.blocks[0].ff.up.weight.mul_(2.0)  # as an optimizer step would
    expected = logits(model, ids)
    with weights.applied():
        torch.testing.assert_close(logits(model, ids), expected, atol=1e-4, rtol=1e-4)


def test_not_packed_with_gradients_in_training_under_autocast_or_with_torch_kernels():
    model = gpt()
    with PrepackedLinears(model, 1).applied() as packed:  # gradients enabled
        assert not packed and patched(model) == []
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16), PrepackedLinears(model, 1).applied() as packed:
            assert not packed
        with cpu_kernels("torch"), kernel_ops.prepacked_linears(model, 1).applied() as packed:
            assert not packed
        model.train()
        with PrepackedLinears(model, 1).applied() as packed:
            assert not packed and patched(model) == []


@needs_onednn
def test_restored_even_when_the_block_raises():
    model = gpt()
    with pytest.raises(KeyError), torch.no_grad(), PrepackedLinears(model, 1).applied():
        assert patched(model)
        raise KeyError("boom")
    assert patched(model) == []


@needs_onednn
def test_greedy_generation_picks_the_same_tokens_packed_or_not(monkeypatch):
    model = gpt()
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12]]  # ragged: left padding and the padded mask path
    used = []

    class Recording(PrepackedLinears):
        @contextmanager
        def applied(self):
            with super().applied() as packed:
                used.append(packed)
                yield packed

    class Never(PrepackedLinears):
        @contextmanager
        def applied(self):
            yield False

    monkeypatch.setattr(kernel_ops, "PrepackedLinears", Recording)
    with cpu_kernels("onednn"):
        packed = generate(model, prompts, max_new_tokens=20, sampling=GREEDY, eos_id=None)
    assert used == [True] * 20  # one swap per decoding step
    monkeypatch.setattr(kernel_ops, "PrepackedLinears", Never)
    plain = generate(model, prompts, max_new_tokens=20, sampling=GREEDY, eos_id=None)
    assert packed == plain
    assert patched(model) == []


def test_the_model_is_plain_between_steps_and_two_streams_interleave():
    model = gpt()
    prompts = [[5, 6, 7]]
    alone = generate(model, prompts, max_new_tokens=8, sampling=GREEDY, eos_id=None)
    first, second = (generate_stream(model, prompts, 8, GREEDY, eos_id=None) for _ in range(2))
    tokens = [[], []]
    for a, b in zip(first, second):
        assert patched(model) == []  # paused: training through the model would use its own forwards
        tokens[0] += a
        tokens[1] += b
    assert tokens == [alone[0], alone[0]]
    model.train()
    model.heads["lm"](model.backbone(torch.tensor([[1, 2, 3]]))).sum().backward()
    assert model.backbone.blocks[0].attn.qkv.weight.grad is not None


@needs_onednn
def test_a_model_is_packed_once_across_generation_calls():
    model = gpt(seed=3)
    with cpu_kernels("onednn"):
        generate(model, [[5, 6, 7]], max_new_tokens=4, sampling=GREEDY, eos_id=None)
        first = {m: prepacked._PACKED[m][1] for m in prepacked._projections(model, (CausalLMHead,))}
        generate(model, [[8, 9]], max_new_tokens=4, sampling=GREEDY, eos_id=None)
    assert all(prepacked._PACKED[m][1] is forward for m, forward in first.items())
