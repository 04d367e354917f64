"""What `lmtrain predict` reads and writes: one input per non-blank line, UTF-8, a bad line named by its number;
stdout lines up with the input lines; ``output=`` never replaces the input, a link's target or a file of another
kind."""

from __future__ import annotations

import errno
import io

import pytest

from lmtrain.errors import UserError
from lmtrain.tasks.prediction_io import check_output, read_input_lines, read_inputs, write_records


def test_inputs_are_the_non_blank_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"Alice visited Paris .\r\n\n  \nBob left .\n")
    assert read_inputs(str(path)) == ["Alice visited Paris .", "Bob left ."]


def test_stdout_keeps_one_line_per_input_line(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("Alice visited Paris .\n\n  \nBob left .\n")
    every = read_input_lines(str(path))
    records = [{"label": "a"}, {"label": "b"}]  # one per non-blank line
    write_records(records, None, lambda r: r["label"], every)
    assert capsys.readouterr().out == "a\n\n\nb\n"


def test_the_output_file_is_checked_before_anything_is_written(tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text("Alice visited Paris .\n")
    with pytest.raises(UserError, match=r"output=.*in.txt is the input file .*Write them to another file"):
        check_output(str(inputs), [str(inputs)])
    mine = tmp_path / "notes.txt"
    mine.write_text("my notes\n")
    with pytest.raises(UserError, match=r"exists and is not a JSON lines file of predictions \(line 1 is not JSON\)"):
        check_output(str(mine), [str(inputs)])
    link = tmp_path / "link.jsonl"
    link.symlink_to(mine)
    with pytest.raises(UserError, match="is a symbolic link; lmtrain never writes"):
        check_output(str(link), [str(inputs)])
    with pytest.raises(UserError, match=r"is a folder; give the file to write, e.g. output=.*predictions.jsonl"):
        check_output(str(tmp_path), [str(inputs)])
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x80" * (1 << 20))  # a large file of another kind, judged by its head only
    with pytest.raises(UserError, match="model.safetensors exists and is not a JSON lines file"):
        check_output(str(weights), [str(inputs)])
    assert mine.read_text() == "my notes\n" and inputs.read_text() == "Alice visited Paris .\n"
    earlier = tmp_path / "deep" / "preds.jsonl"
    write_records([{"text": "x", "label": "a"}], str(earlier), str)  # its folders made
    check_output(str(earlier), [str(inputs)])  # an earlier predictions file may be replaced
    write_records([{"text": "y", "label": "b"}], str(earlier), str)
    assert earlier.read_text() == '{"text": "y", "label": "b"}\n'


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


def test_an_output_that_cannot_be_written_is_one_paragraph(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    with pytest.raises(UserError, match=r"output=.*a-file/deep/p.jsonl: its folder cannot be made, .*a-file is a file"):
        check_output(str(blocker / "deep" / "p.jsonl"), [])

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("lmtrain.tasks.prediction_io.write_text", full_disk)
    with pytest.raises(UserError, match=r"output=.*p.jsonl: cannot write it \(No space left on device\)"):
        write_records([{"text": "x"}], str(tmp_path / "p.jsonl"), str)
    assert blocker.read_text() == "mine\n"
