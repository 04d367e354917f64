"""`lmtrain export` writes only a new folder or a previous export of its own, whole or not at all."""

from __future__ import annotations

import json
import resource
import shlex
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from lmtrain.commands import export
from lmtrain.errors import UserError
from lmtrain.models.families import TransformerFamily
from lmtrain.models.loading import load_checkpoint, locate_model
from lmtrain.runs import export_folder
from tests.conftest import compose_config, run_cli

MARKER = "lmtrain-export.json"


def export_to(ckpt: Path, out: Path | str, fmt: str = "hf") -> dict:
    return export.run(compose_config("export", [f"ckpt={ckpt}", f"format={fmt}", f"out={out}"]))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (symbolic links as their target's name)."""
    return {
        str(p.relative_to(folder)): (str(p.readlink()).encode() if p.is_symlink() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


@pytest.fixture
def run(runs, tmp_path) -> Path:
    """A copy of the tiny BERT run, with the summary and saved config a finished run has."""
    copy = tmp_path / "run"
    shutil.copytree(runs["bert"], copy, symlinks=True)
    (copy / "summary.json").write_text(json.dumps({"command": "pretrain", "steps": 1, "eval/mlm_acc": 0.5}))
    (copy / ".hydra").mkdir()
    (copy / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "text"}}))
    (copy / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model=bert"]))
    (copy / "metrics.jsonl").write_text(json.dumps({"step": 1, "train/loss": 5.0}) + "\n")
    return copy


@pytest.mark.parametrize("fmt", ["hf", "safetensors"])
def test_a_folder_of_the_users_is_refused_and_left_as_it_was(run, tmp_path, fmt):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    (out / "config.json").write_text("{}")
    with pytest.raises(
        UserError,
        match=r"out=.*mine holds files that lmtrain export did not write "
        r"\(README.md, config.json\).*new folder",
    ):
        export_to(run, out, fmt)
    assert tree(out) == {"README.md": b"my notes", "config.json": b"{}"}


@pytest.mark.parametrize("fmt", ["hf", "safetensors"])
@pytest.mark.parametrize(
    "where", ["run", "run/checkpoints/step-1", "run/checkpoints", "run/hf", "run/checkpoints/x", "."]
)
def test_out_in_or_around_a_run_or_checkpoint_is_refused(run, tmp_path, monkeypatch, fmt, where):
    monkeypatch.chdir(tmp_path)
    before = tree(run)
    out = tmp_path / where
    with pytest.raises(UserError, match=r"out=.*(inside|is|holds)"):
        export_to(run / "checkpoints" / "step-1", out, fmt)
    assert tree(run) == before
    assert not (tmp_path / "run" / "hf").exists() and not (tmp_path / "run" / "checkpoints" / "x").exists()


def test_after_a_refused_export_into_a_checkpoint_it_still_loads(run, tmp_path):
    step = run / "checkpoints" / "step-1"
    with pytest.raises(UserError, match=r"out=.*step-1 is inside the run folder .*run \(it holds .hydra/config.yaml\)"):
        export_to(run, step)
    model, _, _ = load_checkpoint(locate_model(run))
    assert model.num_parameters() > 0 and not (run / "config.json").exists()


def test_out_a_file_is_refused(run, tmp_path):
    out = tmp_path / "model.bin"
    out.write_text("mine")
    with pytest.raises(UserError, match=r"out=.*model.bin is a file.*name a folder"):
        export_to(run, out)
    assert out.read_text() == "mine"


@pytest.mark.parametrize("fmt", ["hf", "safetensors"])
def test_out_a_symbolic_link_is_refused(run, tmp_path, fmt):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UserError, match=r"out=.*link is a symbolic link"):
        export_to(run, tmp_path / "link", fmt)
    assert list(target.iterdir()) == [] and (tmp_path / "link").is_symlink()


@pytest.mark.parametrize("fmt", ["hf", "safetensors"])
def test_a_previous_export_is_replaced_whole_and_marked(run, tmp_path, fmt):
    out = tmp_path / "exported"
    export_to(run, out, fmt)
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "lmtrain export" and marker["source"] == str(run / "checkpoints" / "step-1")
    assert set(marker["files"]) == {p.name for p in out.iterdir()} - {MARKER}
    export_to(run, out, fmt)  # again: replaced, nothing left beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    load_checkpoint(out, key="ckpt")


def test_a_previous_export_with_a_file_added_is_refused(run, tmp_path):
    out = tmp_path / "exported"
    export_to(run, out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"notes.txt"):
        export_to(run, out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_symlinked_file_in_a_previous_export_is_never_written_through(run, tmp_path):
    out = tmp_path / "exported"
    export_to(run, out)
    precious = tmp_path / "precious.json"
    precious.write_text("keep")
    (out / "config.json").unlink()
    (out / "config.json").symlink_to(precious)
    with pytest.raises(UserError, match=r"holds config.json, which is a symbolic link"):
        export_to(run, out)
    assert precious.read_text() == "keep" and (out / "config.json").is_symlink()


@pytest.mark.parametrize("bad", ['{"step": 5, "train/loss"', "5", '{"step": "x"}', "[1, 2]", '{"step": 1e400}'])
def test_a_malformed_metrics_line_does_not_stop_the_export_or_its_card(run, tmp_path, bad):
    with (run / "metrics.jsonl").open("a") as metrics:
        metrics.write(bad + "\n")
    out = tmp_path / "exported"
    export_to(run, out)
    card = (out / "README.md").read_text()
    assert "lmtrain pretrain model=bert" in card and "Steps: 1" in card


@pytest.mark.parametrize(
    "summary", ["[1, 2]", '{"steps": "many", "parameters": [1], "init": 5, "train_tokens": "x"}', "\xff\xfe not json"]
)
def test_a_malformed_summary_gives_a_card_without_its_facts(run, tmp_path, summary):
    (run / "summary.json").write_bytes(summary.encode("latin-1"))
    out = tmp_path / "exported"
    export_to(run, out)
    assert "exported by lmtrain" in (out / "README.md").read_text()


def test_card_escapes_file_names_and_override_values(run, tmp_path):
    hostile = "x\n## Injected\n<img src=x onerror=alert(1)>"
    (run / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"data": {"name": "text", "train_files": [f"/data/{hostile}.txt"]}})
    )
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"data.name={hostile}", "x=`]` ```"]))
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "eval/<b>x|y</b>": 1.0, "baseline/[a](b)": 0.5}))
    out = tmp_path / "## Injected <img onerror=alert(1)>"
    export_to(run, f"'{out}'")  # quoted: Hydra's grammar takes these characters only inside quotes
    card = (out / "README.md").read_text()
    _, header, body = card.split("---\n", 2)
    assert yaml.safe_load(header)["library_name"] == "transformers"
    assert "<b>" not in header
    outside_code = body.split("```")[0] + body.rsplit("```", 1)[-1]  # the command is shown as a code block
    assert "<img" not in outside_code and "<b>" not in outside_code and "[a](b)" not in outside_code
    assert all(not line.startswith("## Injected") for line in outside_code.splitlines())
    assert "# \\#\\# Injected &lt;img onerror=alert(1)&gt;" in body and "| &lt;b&gt;x\\|y&lt;/b&gt; |" in body


@contextmanager
def file_size_limit(limit: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize("fmt", ["hf", "safetensors"])
def test_a_file_size_limit_leaves_nothing_at_out(run, tmp_path, fmt):
    out = tmp_path / "exported"
    with (
        pytest.raises(
            UserError,
            match=r"could not write the export to out=.*exported.*file-size limit.*Nothing was "
            r"written",
        ),
        file_size_limit(4096),
    ):
        export_to(run, out, fmt)
    assert list(tmp_path.iterdir()) == [run]


def test_the_cli_refuses_with_exit_2_and_no_traceback(run, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    result = run_cli("export", f"ckpt={run}", f"out={out}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"out={out} holds files that lmtrain export did not write (README.md)" in result.stderr
    assert (out / "README.md").read_text() == "my notes"


def test_the_export_a_finished_run_suggests_is_accepted(run, tmp_path):
    (suggestion,) = [c for c in TransformerFamily.next_commands(None, run) if c.startswith("lmtrain export")]
    overrides = dict(arg.split("=", 1) for arg in shlex.split(suggestion)[2:])
    export_to(Path(overrides["ckpt"]), overrides["out"])
    assert (Path(overrides["out"]) / "README.md").is_file()


def test_a_previous_export_is_replaced_where_paths_cannot_be_exchanged(run, tmp_path, monkeypatch):
    out = tmp_path / "exported"
    export_to(run, out)
    monkeypatch.setattr(export_folder, "_exchange", lambda a, b: False)  # a system without renameat2
    export_to(run, out, "safetensors")
    assert json.loads((out / MARKER).read_text())["format"] == "safetensors" and not (out / "README.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run"]
