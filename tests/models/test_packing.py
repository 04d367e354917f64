"""Skipping a padded training batch's padding (``trainer.packing``): the same outputs and gradients, the
token-wise layers on the real tokens alone and attention in the padded rows or in fewer, packed ones."""

from __future__ import annotations

import copy

import pytest
import torch

from lmtrain.kernels import cpu_kernels
from lmtrain.models.albef import TextFusionEncoder
from lmtrain.models.packing import (
    first_fit_decreasing,
    packed_attention_mask,
    plan_packing,
    plan_unpadding,
    set_packing,
)
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.transformer import Transformer

TINY = dict(vocab_size=50, n_layers=2, d_model=32, n_heads=4, d_ff=48, max_positions=32)
BERT_LIKE = dict(TINY)
GPT_LIKE = dict(
    TINY, causal=True, norm="pre", segment_vocab_size=0, embedding_norm=False, final_norm=True, layer_norm_eps=1e-5
)
LENGTHS = [10, 3, 2, 4, 1, 5]  # first-fit decreasing: [10], [5, 4, 1], [3, 2] -> 3 rows of 6


def backbone(spec: dict, dropout: float = 0.0) -> Transformer:
    """A seeded tiny backbone in training mode."""
    torch.manual_seed(0)
    return Transformer(TransformerSpec(**spec, dropout=dropout, attention_dropout=dropout)).train()


def padding_mask(lengths: list[int], T: int, side: str) -> torch.Tensor:
    """(B, T) mask of rows holding ``lengths`` real tokens, padded on the right or the left."""
    columns = torch.arange(T)[None, :]
    lengths_ = torch.tensor(lengths)[:, None]
    return columns < lengths_ if side == "right" else columns >= T - lengths_


def tokens_embedded(model: Transformer) -> list[int]:
    """The tokens of every batch the backbone's embeddings see from now on."""
    tokens: list[int] = []
    model.embeddings.register_forward_hook(lambda module, args, out: tokens.append(args[0].numel()))
    return tokens


def attention_rows(model: Transformer) -> list[int]:
    """The rows the first block's attention runs in, from now on (from the mask it is given)."""
    rows: list[int] = []
    model.blocks[0].register_forward_hook(lambda module, args, out: rows.append(args[1].shape[0]))
    return rows


@pytest.mark.parametrize("lengths", [LENGTHS, [10, 9, 10, 8]], ids=["packed rows", "padded rows"])
@pytest.mark.parametrize("given_positions", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("spec", [BERT_LIKE, GPT_LIKE], ids=["bidirectional", "causal"])
def test_unpadded_outputs_and_gradients_equal_the_padded_forward(spec, side, given_positions, lengths):
    plain = backbone(spec)
    packed = copy.deepcopy(plain)
    assert set_packing(packed, "auto") == 1
    tokens, rows = tokens_embedded(packed), attention_rows(packed)
    mask = padding_mask(lengths, 10, side)
    torch.manual_seed(1)
    ids = torch.randint(1, 50, mask.shape)
    types = torch.randint(0, 2, mask.shape) if spec.get("segment_vocab_size", 2) else None
    positions = (mask.long().cumsum(1) - 1).clamp(min=0) if given_positions else None
    weights = torch.randn(*mask.shape, 32)
    outputs = []
    for model in (plain, packed):
        out = model(ids, mask.long(), types, positions)
        (out * weights)[mask].sum().backward()
        outputs.append(out[mask])
    assert tokens == [sum(lengths)]  # the token-wise layers ran on the real tokens alone
    assert rows == [3 if lengths == LENGTHS else len(lengths)]  # attention: packed where it saves a quarter
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(plain.named_parameters(), packed.parameters()):
        assert a.grad is not None and b.grad is not None, name
        # a gradient sums hundreds of terms of its own scale in another order: float32 rounding grows with that
        # scale (~300 here), not with each element (a bias element near 0 differs by ~3e-5 on AVX2 CPUs)
        scale = a.grad.abs().max().item()
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6 * scale, rtol=1e-5, msg=name)


def test_padding_positions_come_back_as_zeros_and_an_all_padding_row_gives_no_nan():
    model = backbone(BERT_LIKE, dropout=0.1)
    set_packing(model, "on")
    mask = padding_mask([4, 0, 6, 3], 8, "right")
    out = model(torch.randint(1, 50, mask.shape), mask.long())
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_with_dropout_the_packed_batch_keeps_the_cheaper_dropout_attention(monkeypatch):
    import lmtrain.kernels.ops as ops

    seen = []
    original = ops.attend_with_cheap_dropout
    monkeypatch.setattr(ops, "attend_with_cheap_dropout", lambda *a: seen.append(a[-1].shape) or original(*a))
    model = backbone(GPT_LIKE, dropout=0.1)
    set_packing(model, "on")
    with cpu_kernels("onednn"):
        model(torch.randint(1, 50, (6, 10)), padding_mask(LENGTHS, 10, "left").long()).sum().backward()
    assert seen == [(3, 1, 10, 10)] * 2


@pytest.mark.parametrize("case", ["eval", "kv cache", "no padding", "off", "auto: under 1/16 padding", "no mask"])
def test_other_forwards_take_the_padded_path(case):
    model = backbone(GPT_LIKE)
    set_packing(model, "off" if case == "off" else "auto")
    tokens = tokens_embedded(model)
    lengths = {"no padding": [10] * 6, "auto: under 1/16 padding": [10] * 5 + [7]}
    mask = padding_mask(lengths.get(case, LENGTHS), 10, "right").long()
    B = mask.shape[0]
    ids = torch.randint(1, 50, mask.shape)
    if case == "eval":
        model.eval()
    if case == "kv cache":
        model(ids, mask, cache=model.new_cache(B, 10))
    else:
        model(ids, None if case == "no mask" else mask)
    assert tokens == [B * 10]


def test_on_skips_any_padding_auto_from_a_sixteenth():
    mask = padding_mask([10] * 5 + [7], 10, "right")  # 3 of 60 slots padding: 1/20
    assert plan_unpadding(mask, "auto") is None and plan_unpadding(mask, "off") is None
    plan = plan_unpadding(mask, "on")
    assert plan is not None and plan.source.numel() == 57 and plan.rows == 6 and plan.packing is None
    plan = plan_unpadding(padding_mask([10] * 4 + [6], 10, "right"), "auto")  # 4 of 50: from 1/16
    assert plan is not None and plan.source.numel() == 46
    assert plan_unpadding(padding_mask([0, 0], 10, "right"), "on") is None  # nothing real: nothing to run


def test_on_packs_attention_rows_whenever_a_row_is_saved_auto_only_a_quarter():
    mask = padding_mask([10, 9, 8, 7, 6, 1], 10, "right")  # [10], [9, 1], [8], [7], [6] -> 5 rows of 6
    assert plan_packing(mask, "auto") is None
    assert plan_packing(mask, "off") is None
    plan = plan_packing(mask, "on")
    assert plan is not None and plan.rows == 5
    assert plan_packing(padding_mask([5, 5], 10, "right"), "auto").rows == 1


def test_first_fit_decreasing_places_longest_first_and_skips_empty_rows():
    assert first_fit_decreasing([3, 0, 7, 2, 8], 10) == [(1, 7), (-1, 0), (1, 0), (0, 8), (0, 0)]


def test_every_query_sees_itself_and_only_its_own_sentence():
    plan = plan_packing(padding_mask([2, 3], 6, "right"), "on")  # one row: [3 tokens, 2 tokens, empty]
    mask = packed_attention_mask(plan, causal=True)[0, 0]
    assert mask.diagonal().all()
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[:3, :3] = torch.ones(3, 3, dtype=torch.bool).tril()
    expected[3:5, 3:5] = torch.ones(2, 2, dtype=torch.bool).tril()
    expected[5, 5] = True
    assert torch.equal(mask, expected)


def test_set_packing_sets_plain_backbones_only():
    spec = TransformerSpec(**TINY)
    model = torch.nn.ModuleList([Transformer(spec), TextFusionEncoder(spec, 1, 16)])
    assert set_packing(model, "on") == 1
    assert model[0].packing == "on" and model[1].packing == "off"
    with pytest.raises(ValueError, match="one of auto | on | off"):
        set_packing(model, "yes")
