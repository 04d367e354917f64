"""`lmtrain generate`: continuing prompts, filling masks, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmtrain.commands import generate
from lmtrain.errors import UserError
from tests.conftest import compose_config, run_cli


def run_generate(overrides: list[str]) -> dict:
    return generate.run(compose_config("generate", overrides))


def test_cli_continues_a_prompt_and_records_it(runs, tmp_path):
    out = run_cli(
        "generate",
        f"ckpt={runs['gpt']}",
        "prompt='The fire'",
        "max_new_tokens=5",
        f"hydra.run.dir={tmp_path / 'gen'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The fire") and len(out.stdout.strip()) > len("The fire")
    record = json.loads((tmp_path / "gen" / "generations.jsonl").read_text())
    assert record["prompt"] == "The fire" and 0 < record["new_tokens"] <= 5
    assert out.stdout == "The fire" + record["completion"] + "\n"  # logs stay off stdout


def test_cli_fills_masks_of_a_bert_checkpoint(runs, tmp_path):
    out = run_cli(
        "generate",
        f"ckpt={runs['bert']}",
        "prompt='The [MASK] repaired the old barn.'",
        "candidates=3",
        f"hydra.run.dir={tmp_path / 'fill'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "probability" in out.stdout and "The [MASK] repaired the old barn." in out.stdout
    record = json.loads((tmp_path / "fill" / "generations.jsonl").read_text())
    probs = [c["prob"] for c in record["masks"][0]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1


def test_logs_never_break_a_streamed_line(runs, tmp_path):
    """In a terminal stdout and stderr share one screen: a log line must not land inside the text."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "generate",
            f"ckpt={runs['gpt']}",
            "prompt=The fire",
            "max_new_tokens=8",
            "greedy=true",
            f"hydra.run.dir={tmp_path / 'gen'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout
    record = json.loads((tmp_path / "gen" / "generations.jsonl").read_text())
    assert "The fire" + record["completion"] in out.stdout.splitlines(), out.stdout
    assert "CPU kernels" in out.stdout.split("The fire")[0]  # chosen and logged before the text starts


def test_logs_raised_while_a_line_streams_follow_it():
    import logging

    seen = []

    class Seen(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    root, handler = logging.getLogger(), Seen()
    root.addHandler(handler)
    try:
        with generate.logs_held_back():
            logging.getLogger("lmtrain.kernels").warning("chosen mid-line")
            assert seen == []
        assert seen == ["chosen mid-line"]
    finally:
        root.removeHandler(handler)


def test_cli_reports_a_path_that_is_not_a_checkpoint(tmp_path):
    out = run_cli("generate", f"ckpt={tmp_path}", "prompt=hello", cwd=tmp_path)
    assert out.returncode == 2
    assert "is not a model" in out.stderr and "Traceback" not in out.stderr


def test_streamed_and_batched_prompts_give_the_same_greedy_text(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The farmer\n\nA child found\nThe police\n")
    common = [f"ckpt={runs['gpt']}", f"prompts_file={prompts}", "greedy=true", "max_new_tokens=6"]
    assert run_generate(common)["prompts"] == 3
    streamed = capsys.readouterr().out
    run_generate([*common, "stream=false", "batch_size=2", "use_cache=false"])
    assert capsys.readouterr().out == streamed
    assert streamed.startswith("The farmer") and "\nA child found" in streamed


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["prompt=hello"], "ckpt is not set"),
        (["ckpt={gpt}"], "no prompt given"),
        (["ckpt={gpt}", "prompt=' '"], "prompt is empty"),
        (["ckpt={gpt}", "prompts_file={missing}"], "no such file"),
        (["ckpt={gpt}", "prompts_file={empty}"], "has no prompts"),
        (["ckpt={bert}", "prompt='The fire spread.'"], "has no mask token"),
        (["ckpt={nsp}", "prompt=hello"], "generate needs a causal LM head"),
        (["ckpt={missing}", "prompt=hello"], "no such file or directory"),
        (["ckpt={gpt}", "prompt=hello", "top_p=1.5"], r"top_p=1.5: must be in \(0, 1\]"),
        (
            ["ckpt={gpt}", "prompt=hello", "temperature=1e-300"],
            r"temperature=1e-300: must be 0 \(greedy\) or in \[0.01,",
        ),
        (
            ["ckpt={gpt}", "prompt=hello", "temperature=inf"],
            r"temperature=inf: must be 0 \(greedy\) or in \[0.01, 100\]",
        ),
        (["ckpt={gpt}", "prompt=hello", "seed=99999999999999999999999"], r"seed=99999999999999999999999: must be"),
    ],
)
def test_bad_input_is_a_user_error(runs, tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n  \n")
    paths = {
        **{k: str(v) for k, v in runs.items()},
        "missing": str(tmp_path / "nope"),
        "empty": str(tmp_path / "empty.txt"),
    }
    with pytest.raises(UserError, match=message):
        run_generate([o.format(**paths) for o in overrides])


def test_cli_refuses_a_temperature_that_cannot_sample(runs, tmp_path):
    out = run_cli(
        "generate",
        f"ckpt={runs['gpt']}",
        "prompt=hello",
        "temperature=1e-300",
        f"hydra.run.dir={tmp_path / 'gen'}",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "temperature=1e-300: must be 0 (greedy) or in [0.01, 100]" in " ".join(out.stderr.split())


def test_a_bad_prompts_file_line_is_named_before_any_work(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The farmer\n\nA child found\n" + "the old barn " * 40 + "\n")
    with pytest.raises(UserError, match=r"prompts.txt, line 4: the prompt has \d+ tokens but the model covers 64"):
        run_generate([f"ckpt={runs['gpt']}", f"prompts_file={prompts}", "max_new_tokens=3"])
    assert capsys.readouterr().out == ""  # checked before the first prompt was decoded
    prompts.write_bytes(b"The farmer\nA caf\xe9 owner\n")
    with pytest.raises(UserError, match=r"prompts.txt, line 2: not UTF-8 text"):
        run_generate([f"ckpt={runs['gpt']}", f"prompts_file={prompts}"])
    prompts.write_text("The [MASK] barn.\nno mask here\n")
    with pytest.raises(UserError, match=r"prompts.txt, line 2: .*has no mask token"):
        run_generate([f"ckpt={runs['bert']}", f"prompts_file={prompts}"])


class _ClosedAfterFirstPrompt:
    """stdout of `lmtrain generate ... | head -1`: the pipe closes after the first line."""

    def __init__(self):
        self.text = ""

    def write(self, text: str) -> None:
        if "\n" in self.text:
            raise BrokenPipeError(32, "Broken pipe")
        self.text += text

    def flush(self) -> None:
        pass


def test_results_are_written_as_they_are_produced(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The farmer\nA child found\nThe police\n")
    monkeypatch.setattr("sys.stdout", _ClosedAfterFirstPrompt())
    with pytest.raises(BrokenPipeError):
        run_generate([f"ckpt={runs['gpt']}", f"prompts_file={prompts}", "greedy=true", "max_new_tokens=3"])
    records = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["The farmer"]


def test_free_text_prompts_are_kept_literally(runs, tmp_path):
    prompt = "${oc.env:HOME} ${price} C:\\temp\\new"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("${oc.env:HOME} C:\\temp\n")
    out = run_cli(
        "generate",
        f"ckpt={runs['gpt']}",
        f"prompt={prompt}",
        f"prompts_file={prompts}",
        "max_new_tokens=2",
        f"hydra.run.dir={tmp_path / 'gen'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (tmp_path / "gen" / "generations.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in records] == [prompt, "${oc.env:HOME} C:\\temp"]
    assert out.stdout.startswith(prompt)
    saved = (tmp_path / "gen" / ".hydra" / "config.yaml").read_text() + (
        tmp_path / "gen" / ".hydra" / "overrides.yaml"
    ).read_text()
    assert "oc.env:HOME" in saved and str(Path.home()) not in saved
