"""What `lmtrain predict` reads: one input per non-blank line, UTF-8, a bad line named by its number."""

from __future__ import annotations

import io

import pytest

from lmtrain.errors import UserError
from lmtrain.tasks.prediction_io import read_inputs


def test_inputs_are_the_non_blank_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"Alice visited Paris .\r\n\n  \nBob left .\n")
    assert read_inputs(str(path)) == ["Alice visited Paris .", "Bob left ."]


def test_a_line_that_is_not_utf8_is_named(tmp_path, monkeypatch):
    path = tmp_path / "in.txt"
    path.write_bytes(b"Alice visited Paris .\nA caf\xe9 in Lyon .\n")
    with pytest.raises(UserError, match=r"input=.*in.txt, line 2: not UTF-8 text; save the file as UTF-8"):
        read_inputs(str(path))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"fine\n\n\xff\xfe\n")))
    with pytest.raises(UserError, match=r"input=-, line 3: not UTF-8 text"):
        read_inputs("-")


@pytest.mark.parametrize(
    "values,expected",
    [
        ({"top_k": 0}, "task.top_k=0: must be >= 1"),
        ({"top_k": "many"}, "task.top_k"),
        (
            {"decimals": 3},
            "task.decimals=3 is not read by the run's task (retrieval; its predict keys are typed by "
            "RetrievalPredictConfig), so nothing would read it. That task reads task.images, task.captions, "
            "task.top_k",
        ),
    ],
)
def test_a_tasks_predict_keys_are_typed_by_its_schema(values, expected):
    from lmtrain.config.tasks import RetrievalPredictConfig
    from lmtrain.tasks.prediction_io import typed_predict_options

    with pytest.raises(UserError) as error:
        typed_predict_options(RetrievalPredictConfig, values, "retrieval")
    assert expected in str(error.value)
    assert typed_predict_options(RetrievalPredictConfig, {"top_k": 3, "images": "x"}, "retrieval").top_k == 3
