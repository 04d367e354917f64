"""Prepacked inference weights: same outputs, same tokens, restored afterwards, off where they must be."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from torch import nn

import lmtrain.generation as generation
from lmtrain.generation import Sampling, generate
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.prepacked import prepacked_linears
from lmtrain.models.spec import TransformerSpec

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def gpt() -> LanguageModel:
    torch.manual_seed(0)
    spec = TransformerSpec(vocab_size=97, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_positions=64,
                           dropout=0.0, attention_dropout=0.0, causal=True, norm="pre", segment_vocab_size=0,
                           embedding_norm=False, final_norm=True, activation="gelu_tanh", layer_norm_eps=1e-5)
    return LanguageModel(spec, ["lm"]).eval()


def patched(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if "forward" in m.__dict__]


@needs_onednn
@torch.no_grad()
def test_logits_match_and_forwards_are_restored():
    model = gpt()
    ids = torch.randint(0, 97, (3, 10))
    expected = model.heads["lm"](model.backbone(ids))
    with prepacked_linears(model, rows_hint=3) as packed:
        assert packed
        n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
        assert len(patched(model)) == n_linear + 1  # every linear layer and the tied LM head
        logits = model.heads["lm"](model.backbone(ids))
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert patched(model) == []


def test_not_packed_with_gradients_or_in_training():
    model = gpt()
    with prepacked_linears(model, 1) as packed:  # gradients enabled
        assert not packed and patched(model) == []
    model.train()
    with torch.no_grad(), prepacked_linears(model, 1) as packed:
        assert not packed and patched(model) == []


@needs_onednn
def test_restored_even_when_the_block_raises():
    model = gpt()
    with pytest.raises(KeyError), torch.no_grad(), prepacked_linears(model, 1):
        assert patched(model)
        raise KeyError("boom")
    assert patched(model) == []


def test_greedy_generation_picks_the_same_tokens_packed_or_not(monkeypatch):
    model = gpt()
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12]]  # ragged: left padding and the padded mask path
    real, used = generation.prepacked_linears, []

    @contextmanager
    def recording(model, rows_hint):
        with real(model, rows_hint) as packed:
            used.append(packed)
            yield packed

    @contextmanager
    def never(model, rows_hint):
        yield False

    monkeypatch.setattr(generation, "prepacked_linears", recording)
    packed = generate(model, prompts, max_new_tokens=20, sampling=Sampling(greedy=True), eos_id=None)
    assert used == [torch.backends.mkldnn.is_available()]

    monkeypatch.setattr(generation, "prepacked_linears", never)
    plain = generate(model, prompts, max_new_tokens=20, sampling=Sampling(greedy=True), eos_id=None)
    assert packed == plain
    assert patched(model) == []
