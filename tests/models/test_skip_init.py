"""Building a model whose weights are loaded right after: no initial values drawn, the initialisers restored after,
and the loaded model the same as one built the usual way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmtrain.models.language_model import LanguageModel
from lmtrain.models.skip_init import INITIALISERS, weights_left_as_allocated
from lmtrain.models.spec import TransformerSpec

SPEC = TransformerSpec(vocab_size=60, n_layers=2, d_model=16, n_heads=2, d_ff=32, max_positions=32)


def test_no_initial_values_are_drawn_and_the_initialisers_come_back():
    originals = {name: getattr(nn.init, name) for name in INITIALISERS if hasattr(nn.init, name)}
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with weights_left_as_allocated():
        LanguageModel(SPEC, ["mlm"])
    assert torch.equal(torch.get_rng_state(), before)  # nothing random was drawn
    with pytest.raises(RuntimeError, match="inside"), weights_left_as_allocated():
        raise RuntimeError("inside")
    assert {name: getattr(nn.init, name) for name in originals} == originals
    torch.manual_seed(0)
    LanguageModel(SPEC, ["mlm"])
    assert not torch.equal(torch.get_rng_state(), before)  # outside the block, initialisers draw as usual


def test_a_model_built_so_and_loaded_equals_the_usual_one():
    torch.manual_seed(0)
    usual = LanguageModel(SPEC, ["mlm"]).eval()
    with weights_left_as_allocated():
        fast = LanguageModel(SPEC, ["mlm"]).eval()
    missing, unexpected = fast.load_state_dict(usual.state_dict(), strict=True)
    assert missing == [] and unexpected == []
    ids = torch.randint(5, 60, (2, 12))
    states = fast.backbone(ids)
    assert torch.equal(states, usual.backbone(ids))
    assert torch.equal(fast.heads["mlm"](states), usual.heads["mlm"](states))
