"""Model families are plugs: found by name, and a user's own family imported from the class model.json names."""

from __future__ import annotations

import json

import pytest

from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability
from lmtrain.models.families import AlbefFamily, ElmoFamily, ModelFamily, TransformerFamily
from lmtrain.models.loading import load_checkpoint


def test_the_shipped_families_are_registered_by_name():
    assert ModelFamily.named("transformer") is TransformerFamily
    assert ModelFamily.named("elmo") is ElmoFamily and ModelFamily.named("albef") is AlbefFamily
    with pytest.raises(UserError, match="model family 'nope' is not known here"):
        ModelFamily.named("nope")


def test_a_users_family_is_imported_from_the_class_model_json_records(runs, tmp_path, monkeypatch):
    (tmp_path / "my_family.py").write_text(
        "from lmtrain.models.families import TransformerFamily\n\n\n"
        "class MyFamily(TransformerFamily):\n"
        '    """A Transformer under a name of its own."""\n\n'
        '    name = "my_transformer"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    checkpoint = next((runs["bert"] / "checkpoints").glob("step-*"))
    copy = tmp_path / "run"
    (copy / "checkpoints").mkdir(parents=True)
    target = copy / "checkpoints" / checkpoint.name
    target.mkdir()
    for file in checkpoint.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    meta = json.loads((target / "model.json").read_text())
    (target / "model.json").write_text(
        json.dumps({**meta, "family": "my_transformer", "family_target": "my_family.MyFamily"})
    )
    assert "my_transformer" not in ModelFamily.registry  # nothing has imported it yet
    model, _, loaded = load_checkpoint(target, needs=Capability.MASKED_LM)
    assert loaded["family"] == "my_transformer" and "my_transformer" in ModelFamily.registry
    assert model.num_parameters() > 0
