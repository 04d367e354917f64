"""What fine-tuning reads of a backbone's spec: dropout and max_positions, from any family."""

from __future__ import annotations

import pytest

from lmtrain.errors import UserError
from lmtrain.models.elmo import ElmoSpec
from lmtrain.models.spec import TransformerSpec
from lmtrain.tasks.backbone import _backbone_spec


class _SizesOnly:
    """A family's spec of your own that stores its sizes but names no dropout or max_positions."""

    def to_dict(self) -> dict:
        return {}


def test_the_built_in_backbone_specs_are_read_as_they_are():
    transformer = TransformerSpec(vocab_size=50, n_layers=1, d_model=16, n_heads=2, d_ff=32, max_positions=16)
    elmo = ElmoSpec(vocab_size=50)
    assert _backbone_spec(transformer, "model=bert") is transformer
    assert _backbone_spec(elmo, "model=elmo") is elmo


def test_a_spec_without_dropout_or_max_positions_is_refused_naming_the_model():
    with pytest.raises(
        UserError,
        match=r"model=mine: its _SizesOnly has no dropout and max_positions, which "
        r"fine-tuning reads of a backbone; give the family's spec both",
    ):
        _backbone_spec(_SizesOnly(), "model=mine")
