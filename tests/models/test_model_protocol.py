"""Every model family's module is a TrainedModel: what the trainer, checkpoints and commands rely on."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lmtrain.models.elmo import ElmoSpec, build_elmo
from lmtrain.models.elmo_features import build_elmo_task_model
from lmtrain.models.families import ModelFamily
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.protocol import TrainedModel
from lmtrain.models.spec import TransformerSpec
from tests.albef_fixtures import tiny_model

ELMO = ElmoSpec(
    vocab_size=40,
    d_model=8,
    n_layers=2,
    lstm_dim=12,
    token_encoder="char_cnn",
    max_chars=8,
    char_dim=4,
    char_filter_widths=[1, 2],
    char_filter_counts=[4, 4],
    highway_layers=1,
    dropout=0.0,
)
TAGGER = {"tagger": {"kind": "token_classifier", "n_classes": 3, "dropout": 0.0}}
TRANSFORMER = TransformerSpec(vocab_size=50, n_layers=1, d_model=16, n_heads=2, d_ff=32, max_positions=16)


def _transformer_lm() -> nn.Module:
    return LanguageModel(TRANSFORMER, ["mlm", "nsp"])


def _transformer_tagger() -> nn.Module:
    return LanguageModel(TRANSFORMER, [], TAGGER)


def _elmo_lm() -> nn.Module:
    return build_elmo(ELMO, [f"w{i}" for i in range(ELMO.vocab_size)])


def _elmo_tagger() -> nn.Module:
    return build_elmo_task_model(ELMO, TAGGER, _elmo_lm().state_dict())


def _albef() -> nn.Module:
    return tiny_model()


BUILDERS = {
    "transformer LM": _transformer_lm,
    "transformer tagger": _transformer_tagger,
    "ELMo LM": _elmo_lm,
    "ELMo tagger": _elmo_tagger,
    "ALBEF": _albef,
}


@pytest.fixture(params=list(BUILDERS), ids=list(BUILDERS))
def model(request) -> nn.Module:
    torch.manual_seed(0)
    return BUILDERS[request.param]()


def test_every_family_is_a_trained_model(model):
    assert isinstance(model, TrainedModel)
    assert model.family in ModelFamily.registry, f"{type(model).__name__}.family names no registered ModelFamily"
    assert isinstance(model.heads, nn.ModuleDict)
    assert model.head_names == list(model.heads.keys())
    assert isinstance(model.pretraining_heads, list) and all(isinstance(h, str) for h in model.pretraining_heads)
    assert isinstance(model.task_heads, dict) and set(model.task_heads) <= set(model.head_names)
    assert set(model.pretraining_heads) | set(model.task_heads) >= set(model.head_names)
    json.dumps(model.spec.to_dict())  # model.json keeps the spec
    assert model.num_parameters() > 0
    assert model.num_parameters(include_embeddings=False) <= model.num_parameters()


def test_the_family_rebuilds_the_same_model_from_what_model_json_keeps(model):
    meta = {
        "spec": json.loads(json.dumps(model.spec.to_dict())),
        "heads": model.pretraining_heads,
        "task_heads": model.task_heads,
    }
    rebuilt = ModelFamily.named(model.family).from_meta(meta)
    assert type(rebuilt) is type(model) and rebuilt.head_names == model.head_names
    assert rebuilt.num_parameters() == model.num_parameters()
    assert set(rebuilt.state_dict()) == set(model.state_dict())


def test_a_module_without_the_protocol_is_told_apart():
    assert not isinstance(nn.Linear(2, 2), TrainedModel)
