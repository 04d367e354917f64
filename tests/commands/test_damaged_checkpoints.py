"""Commands that read a checkpoint name the damaged file instead of printing a reader's traceback."""

from __future__ import annotations

import shutil

import pytest

from lmtrain.commands import evaluate, finetune, generate
from lmtrain.errors import UserError
from tests.conftest import compose_config, run_cli


@pytest.fixture
def damaged(runs, tmp_path):
    """Copies of the tiny GPT and BERT runs whose weights were cut in half (a copy that did not finish)."""
    copies = {}
    for name in ("gpt", "bert"):
        copy = tmp_path / f"damaged-{name}"
        shutil.copytree(runs[name], copy, symlinks=True)
        weights = copy / "checkpoints" / "step-1" / "model.safetensors"
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
        copies[name] = copy
    return copies


@pytest.mark.parametrize(
    "command,overrides",
    [
        ("generate", ["ckpt={gpt}", "prompt=hello", "max_new_tokens=2"]),
        ("evaluate", ["ckpt={gpt}", "data=text", "data.train_files=[{corpus}]"]),
        ("finetune", ["task=ner", "init={bert}", "trainer.max_steps=1", "trainer.progress=false"]),
    ],
)
def test_a_truncated_checkpoint_is_a_named_error(runs, damaged, tmp_path, monkeypatch, command, overrides):
    monkeypatch.chdir(tmp_path)
    paths = {**{k: str(v) for k, v in damaged.items()}, "corpus": str(runs["corpus"])}
    run = {"generate": generate.run, "evaluate": evaluate.run, "finetune": finetune.run}[command]
    with pytest.raises(UserError, match=r"model.safetensors is unreadable .*truncated or corrupt"):
        run(compose_config(command, [o.format(**paths) for o in overrides]))


def test_the_cli_exits_2_without_a_traceback(damaged, tmp_path):
    out = run_cli("generate", f"ckpt={damaged['gpt']}", "prompt=hello", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model.safetensors is unreadable" in out.stderr and str(damaged["gpt"]) in out.stderr
