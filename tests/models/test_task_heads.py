"""Task heads are classes a task names: the built-in ones by short name, a task's own by its class path."""

from __future__ import annotations

import pytest
import torch

from lmtrain.errors import UserError
from lmtrain.models.heads import PooledClassifierHead, TaskHead, TokenClassifierHead, build_task_head


class ScoreHead(TaskHead):
    """A head of a task of one's own: one number per sequence."""

    def __init__(self, d_model: int, scale: float):
        super().__init__()
        self.output, self.scale = torch.nn.Linear(d_model, 1), scale

    @classmethod
    def from_description(cls, description: dict, d_model: int, init_std: float = 0.02) -> ScoreHead:
        return cls(d_model, float(description["scale"]))

    def forward(self, hidden, attention_mask=None):
        return self.scale * self.output(hidden[:, 0]).squeeze(-1)


def test_built_in_heads_keep_their_short_names():
    assert TokenClassifierHead.kind_name() == "token_classifier"
    assert PooledClassifierHead.kind_name() == "pooled_classifier"
    head = build_task_head(
        {"kind": "token_classifier", "n_classes": 3, "dropout": 0.0, "encoder": "bilstm", "lstm_dim": 4, "crf": True},
        d_model=8,
    )
    assert head.encoder is not None and head.crf is not None


def test_a_task_of_ones_own_brings_its_head_by_class_path():
    kind = ScoreHead.kind_name()
    assert kind == f"{__name__}.ScoreHead"
    head = build_task_head({"kind": kind, "scale": 5.0}, d_model=8)
    assert isinstance(head, ScoreHead) and head(torch.zeros(2, 3, 8)).shape == (2,)


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("lmtrain.models.heads.MaskedLMHead", "is not a TaskHead"),
        ("os.system", "names a module of Python's standard library"),
        ("no_such_package.Head", "cannot be imported"),
    ],
)
def test_a_kind_that_names_no_task_head_is_refused(kind, expected):
    with pytest.raises(UserError) as error:
        build_task_head({"kind": kind, "n_classes": 2}, d_model=8)
    assert expected in str(error.value) and "model.json's `task_heads`" in str(error.value)
