"""A run of a user's plug remembers where the plug came from (issue 26, item 3).

The span-masking example (examples/span_masking) is pretrained once with its YAML on the search path
(given relative to the project root) and its package on PYTHONPATH; every later command then works
from another folder without the search path, and without PYTHONPATH it says which module failed,
where the run found it and what to type.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_corpus

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "span_masking"
WITH_PLUG = {"PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
QUIET = ["trainer.progress=false", "trainer.preflight=false", "trainer.max_time=null"]


@pytest.fixture(scope="module")
def span_run(tmp_path_factory) -> Path:
    """A finished 4-step span-masking run, started from the project root with a relative search path."""
    root = tmp_path_factory.mktemp("span")
    corpus = write_corpus(root / "corpus.txt", n_docs=40)
    result = run_cli(
        "pretrain",
        "model=bert",
        "objective=span_mlm",
        "hydra.searchpath=[file://examples/span_masking/configs]",
        "model.size=tiny",
        "trainer.max_steps=4",
        "trainer.eval_every=0",
        "trainer.batch_size=8",
        "data=text",
        f"data.train_files=[{corpus}]",
        "data.max_seq_len=32",
        f"data.cache_dir={root / 'cache'}",
        "tokenizer.vocab_size=200",
        f"hydra.run.dir={root / 'run'}",
        *QUIET,
        cwd=ROOT,
        env=WITH_PLUG,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def test_the_run_records_its_search_path_and_plug_folder(span_run):
    record = json.loads((span_run / ".hydra" / "plugs.json").read_text())
    assert record["searchpath"] == [f"file://{EXAMPLE / 'configs'}"]  # absolute: the run may be used from anywhere
    assert record["plugs"] == {
        "objective": {"target": "span_masking.SpanMaskingObjective", "module": "span_masking", "folder": str(EXAMPLE)}
    }


def test_resume_finds_the_plug_without_the_search_path(span_run, tmp_path):
    result = run_cli("resume", str(span_run), "trainer.max_steps=6", cwd=tmp_path, env=WITH_PLUG)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((span_run / "summary.json").read_text())["steps"] == 6
    assert json.loads((span_run / ".hydra" / "resume-1" / "plugs.json").read_text())["searchpath"] == [
        f"file://{EXAMPLE / 'configs'}"
    ]


def test_evaluate_export_continued_pretraining_and_finetuning_need_no_search_path(span_run, tmp_path):
    evaluated = run_cli(
        "evaluate",
        f"ckpt={span_run}",
        "max_batches=2",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
        env=WITH_PLUG,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    exported = run_cli(
        "export", f"ckpt={span_run}", "format=safetensors", f"out={tmp_path / 'exported'}", cwd=tmp_path, env=WITH_PLUG
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=20)
    continued = run_cli(
        "pretrain",
        f"init={span_run}",
        "trainer.max_steps=2",
        "trainer.eval_every=0",
        "trainer.batch_size=8",
        "data=text",
        f"data.train_files=[{corpus}]",
        "data.max_seq_len=32",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'continued'}",
        *QUIET,
        cwd=tmp_path,
        env=WITH_PLUG,
    )
    assert continued.returncode == 0, continued.stderr[-3000:]
    finetuned = run_cli(
        "finetune",
        "task=classification",
        f"init={span_run}",
        "trainer.max_steps=2",
        "trainer.eval_every=0",
        "trainer.batch_size=8",
        f"hydra.run.dir={tmp_path / 'finetuned'}",
        *QUIET,
        cwd=tmp_path,
        env=WITH_PLUG,
    )
    assert finetuned.returncode == 0, finetuned.stderr[-3000:]


def test_a_plug_module_not_on_the_module_path_is_named_with_its_folder(span_run, tmp_path):
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    for args in (
        ["evaluate", f"ckpt={span_run}", f"hydra.run.dir={tmp_path / 'eval'}"],
        ["resume", str(span_run), "trainer.max_steps=8"],
    ):
        result = run_cli(*args, cwd=tmp_path, env=env)
        assert result.returncode == 2, result.stderr[-3000:]
        assert "span_masking.SpanMaskingObjective cannot be imported" in result.stderr
        # the newest record names it: .hydra/plugs.json, or .hydra/resume-1/plugs.json once the run was resumed
        assert f"The run found it in {EXAMPLE} (recorded in {span_run / '.hydra'}" in result.stderr
        assert f"`PYTHONPATH={EXAMPLE} lmtrain ...`" in result.stderr and "Traceback" not in result.stderr


def test_resume_says_when_the_recorded_config_folder_is_gone(span_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(span_run, copy, symlinks=True)
    for record in sorted((copy / ".hydra").rglob("plugs.json")):  # the original's and a resume's: the newest is read
        record.write_text(
            json.dumps({**json.loads(record.read_text()), "searchpath": [f"file://{tmp_path / 'moved'}"]})
        )
    result = run_cli("resume", str(copy), "trainer.max_steps=8", cwd=tmp_path, env=WITH_PLUG)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"names file://{tmp_path / 'moved'} (recorded in {copy / '.hydra'}" in result.stderr
    assert "which is no folder now" in result.stderr
    assert "hydra.searchpath=[file://<folder>]" in result.stderr
