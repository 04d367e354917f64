"""Sequence classification reads the backbone's states where its head does: a pooled head's first positions only,
with the loss and gradients of the whole forward."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lmtrain.models.language_model import LanguageModel
from lmtrain.models.packing import set_packing
from lmtrain.models.spec import TransformerSpec
from lmtrain.objectives.sequence_classification import SequenceClassification


def classifier(kind: str) -> LanguageModel:
    """A seeded tiny Transformer with a ``kind`` classification head of 3 classes, in training mode."""
    torch.manual_seed(0)
    spec = TransformerSpec(
        vocab_size=40, n_layers=2, d_model=32, n_heads=4, d_ff=48, max_positions=32, dropout=0.0, attention_dropout=0.0
    )
    heads = {"classifier": {"kind": kind, "n_classes": 3, "dropout": 0.0}}
    return LanguageModel(spec, [], heads).train()


def batch() -> dict[str, torch.Tensor]:
    """6 sentences of 12, 3, 5, 2, 4 and 6 tokens, padded to 12."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([12, 3, 5, 2, 4, 6])
    mask = torch.arange(12)[None, :] < lengths[:, None]
    ids = torch.randint(5, 40, (6, 12), generator=g) * mask
    return {
        "input_ids": ids,
        "attention_mask": mask.long(),
        "token_type_ids": torch.zeros_like(ids),
        "label": torch.tensor([0, 1, 2, 1, 0, 2]),
    }


def plain_loss(model: LanguageModel, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss from the whole backbone's states, as a reader of the model would compute it."""
    hidden = model.backbone(data["input_ids"], data["attention_mask"], data["token_type_ids"])
    logits = model.heads["classifier"](hidden, data["attention_mask"])
    return F.cross_entropy(logits, data["label"], reduction="sum") / len(data["label"])


def gradients(model: LanguageModel, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradients of ``loss`` by parameter name."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def rows_fed_forward(model: LanguageModel) -> list[int]:
    """The rows the last block's feed-forward sees from now on."""
    rows: list[int] = []
    up = model.backbone.blocks[-1].ff.up
    up.register_forward_hook(lambda module, args, out: rows.append(args[0].reshape(-1, 32).shape[0]))
    return rows


@pytest.mark.parametrize("packing", ["off", "on"])
@pytest.mark.parametrize("kind", ["pooled_classifier", "mean_pooled_classifier"])
def test_the_loss_and_gradients_are_the_whole_forwards(kind, packing):
    model, data = classifier(kind), batch()
    plain = copy.deepcopy(model)
    set_packing(model, packing)
    objective = SequenceClassification(["a", "b", "c"])
    rows = rows_fed_forward(model)
    out = objective(model, data, objective.count_targets(data))
    got = gradients(model, out.loss)
    expected_loss = plain_loss(plain, data)
    expected = gradients(plain, expected_loss)
    torch.testing.assert_close(out.loss, expected_loss, atol=1e-6, rtol=1e-5)
    assert got.keys() == expected.keys()
    # one scale for all: a gradient that is a sum of nearly cancelling terms (the last block's norm bias,
    # under mean pooling) differs by float rounding that is large beside its own size, not beside the terms
    scale = max(grad.abs().max().item() for grad in expected.values())
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5 * scale, rtol=1e-5, msg=name)
    tokens = 12 + 6 + 5 + 4 + 3 + 2 if packing == "on" else 6 * 12  # unpadded: the real tokens alone
    # a pooled head reads the first token of each sentence: the last feed-forward runs there only
    assert rows == [6 if kind == "pooled_classifier" else tokens]


def test_in_evaluation_the_loss_is_the_whole_forwards_and_predictions_are_kept():
    model, data = classifier("pooled_classifier"), batch()
    model.eval()
    objective = SequenceClassification(["a", "b", "c"])
    with torch.no_grad():
        out = objective(model, data, objective.count_targets(data))
        expected = plain_loss(model, data)
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=1e-5)
    assert out.predictions is not None and len(out.predictions["pred"]) == 6
