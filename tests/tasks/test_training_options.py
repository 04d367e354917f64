"""Class weights, freezing and the head learning rate do what they say."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.objectives.sequence_classification import SequenceClassification
from lmtrain.objectives.token_classification import TokenClassification
from lmtrain.tasks.model import freeze
from lmtrain.training.optim import build_optimizer
from tests.conftest import compose_config

SPEC = TransformerSpec(
    vocab_size=50, n_layers=3, d_model=16, n_heads=2, d_ff=32, max_positions=16, dropout=0.0, attention_dropout=0.0
)


def classifier_model(kind: str = "pooled_classifier", name: str = "classifier") -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(SPEC, [], {name: {"kind": kind, "n_classes": 2, "dropout": 0.0}}).eval()


def batch():
    ids = torch.randint(5, 50, (6, 7))
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids, dtype=torch.bool),
        "label": torch.tensor([0, 0, 0, 0, 1, 1]),
    }


def test_class_weights_give_the_weighted_mean_loss():
    model, data = classifier_model(), batch()
    objective = SequenceClassification(["a", "b"], weights=[1.0, 3.0])
    out = objective(model, data, objective.count_targets(data))
    logits = model.heads["classifier"](model.backbone(data["input_ids"]))
    expected = F.cross_entropy(logits, data["label"], weight=torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(out.loss, expected)
    assert objective.count_targets(data)["cls"] == pytest.approx(4 * 1.0 + 2 * 3.0)


def test_zero_weight_class_gives_no_gradient():
    model, data = classifier_model(), batch()
    data["label"] = torch.zeros(6, dtype=torch.long)  # every example is of the zero-weight class
    objective = SequenceClassification(["a", "b"], weights=[0.0, 1.0])
    objective(model.train(), data, {"cls": torch.tensor(1.0)}).loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_token_class_weights_match_weighted_cross_entropy():
    model = classifier_model("token_classifier", "tagger")
    data = batch()
    labels = torch.full_like(data["input_ids"], -100)
    labels[:, 1:4] = torch.tensor([0, 1, 1])
    data["labels"] = labels
    objective = TokenClassification(["O", "B-X"], weights=[0.5, 2.0])
    out = objective(model.train(), data, objective.count_targets(data))
    selected = labels != -100
    logits = model.heads["tagger"](model.backbone(data["input_ids"])[selected])
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, labels[selected], weight=torch.tensor([0.5, 2.0])))


def test_freeze_layers_and_head_lr():
    model = classifier_model()
    freeze(model, freeze_backbone=False, freeze_layers=2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("backbone.embeddings.") for n in frozen)
    assert any(n.startswith("backbone.blocks.1.") for n in frozen)
    assert not any(n.startswith("backbone.blocks.2.") or n.startswith("heads.") for n in frozen)
    optim_cfg = compose_config("finetune", ["optim.lr=1e-4"]).optim
    optimizer = build_optimizer(model, optim_cfg, torch.device("cpu"), head_lr=5e-3)
    head_ids = {id(p) for p in model.heads.parameters()}
    for group in optimizer.param_groups:
        in_head = {id(p) in head_ids for p in group["params"]}
        assert len(in_head) == 1 and group["lr"] == (5e-3 if in_head.pop() else 1e-4)
    n_optimised = sum(len(g["params"]) for g in optimizer.param_groups)
    assert n_optimised == sum(p.requires_grad for p in model.parameters())


def test_freeze_whole_backbone_and_bad_layer_count():
    from lmtrain.errors import UserError

    model = classifier_model()
    freeze(model, freeze_backbone=True, freeze_layers=0)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    with pytest.raises(UserError, match="finetune.freeze_layers=4: the backbone has 3 layers"):
        freeze(classifier_model(), False, 4)


def test_a_frozen_elmo_head_learns_at_its_own_rate_unless_told():
    from lmtrain.models.elmo import ElmoSpec
    from lmtrain.models.families import ElmoFamily, TransformerFamily
    from lmtrain.tasks.backbone import Backbone
    from lmtrain.tasks.model import head_learning_rate

    elmo = Backbone(ElmoSpec(vocab_size=10), None, None, "elmo", "test", ElmoFamily)
    bert = Backbone(SPEC, None, None, "bert", "test", TransformerFamily)
    assert head_learning_rate(elmo, None, None) == ElmoFamily.head_lr == 1e-2
    assert head_learning_rate(elmo, 3e-3, None) == 3e-3
    assert head_learning_rate(elmo, None, False) is None  # a tuned biLM: one rate unless finetune.head_lr says
    assert head_learning_rate(bert, None, None) is None
