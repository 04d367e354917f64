"""A hand-altered model.json is refused against the weight file's header before any model is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmtrain.errors import UserError
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.loading import load_checkpoint
from lmtrain.models.spec import TransformerSpec
from lmtrain.training.checkpoint import save_checkpoint

SPEC = dict(vocab_size=60, n_layers=2, d_model=16, n_heads=2, d_ff=32, max_positions=32)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    model = LanguageModel(TransformerSpec(**SPEC), ["mlm"], None)
    meta = {
        "family": "transformer",
        "model_name": "bert",
        "objective": "mlm",
        "spec": model.spec.to_dict(),
        "heads": ["mlm"],
        "task_heads": {},
        "tokenizer_roles": {},
    }
    return save_checkpoint(tmp_path / "checkpoints", 1, model, meta, None, None)


def _alter(checkpoint: Path, **spec) -> None:
    meta = json.loads((checkpoint / "model.json").read_text())
    meta["spec"].update(spec)
    (checkpoint / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "spec, said",
    [
        ({"n_layers": 1_000_000}, "spec.n_layers=1000000 cannot describe the model"),
        ({"vocab_size": 1_000_000_000}, "spec.vocab_size=1000000000 cannot describe the model"),
        ({"n_layers": 40}, "more weight tensors than the"),
        ({"d_model": 32, "n_heads": 2}, "whose backbone."),
        ({"n_layers": "2"}, "spec.n_layers='2' is not a valid int"),
        ({"d_model": True}, "spec.d_model=True is not a valid int"),
        ({"dropout": -1e400}, "spec.dropout=-inf is not a valid float"),
    ],
)
def test_an_altered_model_json_is_refused_before_anything_is_built(checkpoint, spec, said):
    _alter(checkpoint, **spec)
    with pytest.raises(UserError, match="model.json") as error:
        load_checkpoint(checkpoint)
    assert said in str(error.value)


def test_the_checkpoint_as_written_still_loads(checkpoint, monkeypatch):
    monkeypatch.setattr("lmtrain.models.loading.checkpoint_tokenizer", lambda *a: "tokenizer")  # saved without one
    model, tokenizer, meta = load_checkpoint(checkpoint)
    assert tokenizer == "tokenizer" and model.spec == TransformerSpec(**{**SPEC, **meta["spec"]})
    assert len(model.backbone.blocks) == 2 and not next(model.parameters()).is_meta
