"""Behaviour of the Transformer backbone: causality, padding, KV cache, positions, spec checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmtrain.config import TransformerConfig as ModelConfig
from lmtrain.errors import UserError
from lmtrain.models.embeddings import sinusoidal_table
from lmtrain.models.spec import TransformerSpec, resolve_spec
from lmtrain.models.transformer import Transformer

TINY = dict(
    vocab_size=50, n_layers=2, d_model=32, n_heads=4, d_ff=48, max_positions=32, dropout=0.0, attention_dropout=0.0
)


def backbone(**overrides) -> Transformer:
    """A seeded tiny backbone in eval mode; ``overrides`` change the spec."""
    torch.manual_seed(0)
    return Transformer(TransformerSpec(**{**TINY, **overrides})).eval()


def causal_backbone() -> Transformer:
    return backbone(
        causal=True,
        norm="pre",
        segment_vocab_size=0,
        embedding_norm=False,
        final_norm=True,
        activation="gelu_tanh",
        layer_norm_eps=1e-5,
    )


@torch.no_grad()
def test_causal_attention_does_not_see_the_future():
    model = causal_backbone()
    ids = torch.randint(0, 50, (2, 9))
    before = model(ids)
    for t in range(ids.shape[1] - 1):
        changed = ids.clone()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 50
        after = model(changed)
        torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
        assert not torch.allclose(after[:, t + 1], before[:, t + 1], atol=1e-4)


@torch.no_grad()
def test_bidirectional_attention_sees_the_future():
    model = backbone()
    ids = torch.randint(0, 50, (1, 6))
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 50
    assert not torch.allclose(model(ids)[:, 0], model(changed)[:, 0], atol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
@torch.no_grad()
def test_right_padding_does_not_change_real_tokens(causal):
    model = causal_backbone() if causal else backbone()
    ids = torch.randint(1, 50, (2, 6))
    token_types = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    reference = model(ids, token_type_ids=None if causal else token_types)
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)  # (2, 9)
    mask = torch.cat([torch.ones(2, 6), torch.zeros(2, 3)], dim=1)  # (2, 9)
    padded_types = None if causal else torch.cat([token_types, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    out = model(padded, attention_mask=mask, token_type_ids=padded_types)
    torch.testing.assert_close(out[:, :6], reference, atol=1e-5, rtol=0)


@torch.no_grad()
def test_padding_mask_per_row():
    model = backbone()
    ids = torch.randint(1, 50, (2, 8))
    mask = torch.ones(2, 8)
    mask[1, 5:] = 0
    out = model(ids, attention_mask=mask)
    torch.testing.assert_close(out[0], model(ids[:1])[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1, :5], model(ids[1:, :5])[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("prefill", [1, 4])
@torch.no_grad()
def test_kv_cache_matches_full_forward(prefill):
    model = causal_backbone()
    ids = torch.randint(0, 50, (2, 10))
    full = model(ids)
    cache = model.new_cache(batch_size=2, max_len=10)
    steps = [model(ids[:, :prefill], cache=cache)]
    for t in range(prefill, ids.shape[1]):
        steps.append(model(ids[:, t : t + 1], cache=cache))
    assert cache.length == 10
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_kv_cache_with_attention_mask_matches_full_forward():
    model = causal_backbone()
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7)
    full = model(ids, attention_mask=mask)
    cache = model.new_cache(batch_size=2, max_len=7)
    steps = [model(ids[:, :3], attention_mask=mask[:, :3], cache=cache)]
    for t in range(3, 7):
        steps.append(model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_kv_cache_overflow_is_an_error():
    model = causal_backbone()
    cache = model.new_cache(batch_size=1, max_len=3)
    with torch.no_grad(), pytest.raises(ValueError, match="holds 3 positions"):
        model(torch.zeros(1, 4, dtype=torch.long), cache=cache)


@torch.no_grad()
def test_sinusoidal_positions():
    model = backbone(position="sinusoidal")
    assert not any("position" in name for name in model.state_dict())  # fixed table, not saved
    ids = torch.full((2, 7), 5)  # the same token everywhere: only positions tell them apart
    out = model(ids)
    assert out.shape == (2, 7, 32)
    for t in range(1, 7):
        assert not torch.allclose(out[:, 0], out[:, t], atol=1e-4)
    table = sinusoidal_table(4, 6)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    assert torch.allclose(table[1, 0], torch.sin(torch.tensor(1.0)))


def test_position_offset_reads_shifted_rows():
    model = backbone(position_offset=2, segment_vocab_size=0)
    assert model.embeddings.position.num_embeddings == 32 + 2
    ids = torch.randint(0, 50, (1, 5))
    with torch.no_grad():
        model.embeddings.position.weight[:2] = 100.0  # rows before the offset are never read
        out = model(ids)
        model.embeddings.position.weight[:2] = -100.0
        torch.testing.assert_close(model(ids), out, atol=0, rtol=0)


def test_resolve_spec_fills_a_size_preset():
    spec = resolve_spec(ModelConfig(size="mini", d_ff=999), vocab_size=123, pad_token_id=3)
    assert (spec.n_layers, spec.d_model, spec.n_heads, spec.d_ff) == (4, 256, 4, 999)
    assert spec.vocab_size == 123 and spec.pad_token_id == 3
    assert TransformerSpec.from_dict({**spec.to_dict(), "unknown": 1}) == spec


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(size="huge"), "model.size=huge is not a known size; choose one of tiny, mini, small, medium, base"),
        (dict(size=None, n_layers=2, d_model=32), "model.n_heads, model.d_ff not set"),
        (
            dict(size=None, n_layers=2, d_model=30, n_heads=4, d_ff=64),
            "model.d_model=30 is not divisible by model.n_heads=4",
        ),
        (dict(size="tiny", activation="swish"), "model.activation=swish is not supported"),
        (dict(size="tiny", norm="sandwich"), "model.norm=sandwich is not supported; choose one of pre, post"),
        (dict(size="tiny", position="rotary"), "model.position=rotary is not supported"),
    ],
)
def test_resolve_spec_errors(overrides, message):
    cfg = dataclasses.replace(ModelConfig(), **overrides)
    with pytest.raises(UserError) as error:
        resolve_spec(cfg, vocab_size=100, pad_token_id=0)
    assert message in str(error.value)


@pytest.mark.parametrize("causal", [False, True])
def test_a_mask_without_padding_reaches_attention_as_none(causal):
    """Packed pretraining batches carry an all-True mask: it must not push SDPA off its fused kernels."""
    model = causal_backbone() if causal else backbone()
    ids = torch.randint(1, 50, (2, 8))
    assert model.attention_mask(torch.ones(2, 8, dtype=torch.bool), 8, 8) == (None, causal)
    padded = torch.ones(2, 8, dtype=torch.bool)
    padded[1, 6:] = False
    assert model.attention_mask(padded, 8, 8)[0] is not None
    with torch.no_grad():
        torch.testing.assert_close(model(ids, attention_mask=torch.ones(2, 8)), model(ids), atol=0, rtol=0)
