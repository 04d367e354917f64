"""``Transformer.states_at``: the last block at the wanted positions only, the full forward's states and gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from lmtrain.models.packing import set_packing
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.transformer import Transformer, wanted_layout

TINY = dict(vocab_size=50, n_layers=3, d_model=32, n_heads=4, d_ff=48, max_positions=32)
PRE_NORM_BIDIRECTIONAL = dict(TINY, norm="pre", final_norm=True, embedding_norm=False)
GPT_LIKE = dict(TINY, causal=True, norm="pre", segment_vocab_size=0, embedding_norm=False, final_norm=True)


def backbone(spec: dict, dropout: float = 0.0) -> Transformer:
    """A seeded tiny backbone in training mode."""
    torch.manual_seed(0)
    return Transformer(TransformerSpec(**spec, dropout=dropout, attention_dropout=dropout)).train()


def batch(share: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, padding mask, wanted) of 4 rows of 16: two rows padded, about ``share`` of each row wanted."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (4, 16), generator=g)
    mask = torch.ones(4, 16, dtype=torch.long)
    mask[1, 10:] = mask[3, 5:] = 0
    wanted = (torch.rand(4, 16, generator=g) < share) & mask.bool()
    wanted[:, 0] = True
    return ids, mask, wanted


def rows_fed_forward(model: Transformer) -> list[int]:
    """The rows the last block's feed-forward sees from now on."""
    rows: list[int] = []
    up = model.blocks[-1].ff.up
    up.register_forward_hook(lambda module, args, out: rows.append(args[0].reshape(-1, 32).shape[0]))
    return rows


def states_and_gradients(model: Transformer, compute) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The states ``compute(model)`` gives and the gradients of a weighted sum of them."""
    model.zero_grad(set_to_none=True)
    states = compute(model)
    weights = torch.randn(states.shape, generator=torch.Generator().manual_seed(2))
    (states * weights).sum().backward()
    return states.detach(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("layout", ["padded", "unpadded", "packed"])
@pytest.mark.parametrize("checkpointed", [False, True], ids=["", "checkpointed"])
@pytest.mark.parametrize("spec", [TINY, PRE_NORM_BIDIRECTIONAL], ids=["post-norm", "pre-norm"])
def test_states_and_gradients_equal_the_full_forward_at_the_wanted_positions(spec, checkpointed, layout):
    model = backbone(dict(spec, checkpoint_activations=checkpointed))
    ids, mask, wanted = batch()
    if layout == "packed":
        mask[1:, 6:] = 0  # rows of 16, 6, 6 and 5 tokens: attention in three packed rows, [16], [6, 6], [5]
    if layout == "unpadded":
        mask[1, 10:], mask[3, 5:] = 1, 0  # rows of 16, 16, 16 and 5 tokens: attention in the padded rows
    if layout != "padded":
        wanted &= mask.bool()
        set_packing(model, "on")
    plain = copy.deepcopy(model)
    set_packing(plain, "off")
    full, full_grads = states_and_gradients(plain, lambda m: m(ids, mask)[wanted])
    rows = rows_fed_forward(model)
    picked, picked_grads = states_and_gradients(model, lambda m: m.states_at(ids, mask, None, wanted))
    assert set(rows) == {int(wanted.sum())}  # the last feed-forward ran at the wanted positions only
    torch.testing.assert_close(picked, full, atol=1e-5, rtol=1e-5)
    assert picked_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        # a gradient sums many terms of its own scale in another order: float32 rounding grows with that scale
        scale = grad.abs().max().item()
        torch.testing.assert_close(picked_grads[name], grad, atol=1e-6 * scale, rtol=1e-5, msg=name)


def test_in_evaluation_and_with_dropout_the_states_have_the_full_shape_and_repeat_at_a_seed():
    model = backbone(TINY, dropout=0.1)
    ids, mask, wanted = batch()
    model.eval()
    torch.testing.assert_close(model.states_at(ids, mask, None, wanted), model(ids, mask)[wanted])
    model.train()
    draws = []
    for _ in range(2):
        torch.manual_seed(5)
        draws.append(model.states_at(ids, mask, None, wanted))
    assert draws[0].shape == (int(wanted.sum()), 32) and torch.isfinite(draws[0]).all()
    torch.testing.assert_close(draws[0], draws[1], atol=0, rtol=0)


@pytest.mark.parametrize(
    "case", ["causal", "more than half of a row wanted", "padding wanted", "nothing wanted"], ids=lambda case: case
)
def test_other_batches_run_the_full_forward_and_pick(case):
    spec, share = (GPT_LIKE, 0.2) if case == "causal" else (TINY, 0.9 if case.startswith("more") else 0.2)
    model = backbone(spec)
    ids, mask, wanted = batch(share)
    if case == "padding wanted":
        mask[1:, 6:] = 0
        wanted[3, 10] = True
        set_packing(model, "on")
    if case == "nothing wanted":
        wanted = torch.zeros_like(wanted)
    plain = copy.deepcopy(model)
    set_packing(plain, "off")
    rows = rows_fed_forward(model)
    picked = model.states_at(ids, mask, None, wanted)
    real = mask.bool()[wanted]  # an unpadded forward gives zeros at padding, a padded one whatever it computed there
    torch.testing.assert_close(picked[real], plain(ids, mask)[wanted][real], atol=1e-5, rtol=1e-5)
    assert rows == [int(mask.sum()) if case == "padding wanted" else 4 * 16]


def test_the_layout_lists_each_rows_wanted_positions_first_in_order():
    wanted = torch.tensor([[False, True, False, True], [True, False, False, False]])
    positions, valid = wanted_layout(wanted)
    assert positions.tolist()[0] == [1, 3] and positions.tolist()[1][0] == 0
    assert valid.tolist() == [[True, True], [True, False]]
    assert positions[valid].tolist() == [1, 3, 0]
