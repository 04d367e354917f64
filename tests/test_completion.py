"""Shell completion of `lmtrain <command> ...`: commands, config groups, options and keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmtrain.cli.completion import script, strip_command


def _query(line: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
    return subprocess.run(
        [sys.executable, "-m", "lmtrain", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_hydra_query_after_a_command_completes_keys(tmp_path):
    result = _query("lmtrain pretrain trainer.max_s", "pretrain", "-sc", "query=bash", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["trainer.max_steps="]


def test_query_completes_commands_groups_and_options(tmp_path):
    assert _query("lmtrain pre", "completion", "query", "bash", cwd=tmp_path).stdout.split() == ["pretrain", "predict"]
    groups = _query("lmtrain finetune ", "completion", "query", "bash", cwd=tmp_path).stdout.split()
    assert "task=" in groups and "trainer." in groups
    fish = _query("lmtrain pretrain model=g", "completion", "query", "fish", cwd=tmp_path).stdout
    assert fish.splitlines() == ["model=gpt"]  # fish reads one candidate per line
    (tmp_path / "outputs").mkdir()
    assert "outputs/" in _query("lmtrain runs out", "completion", "query", "bash", cwd=tmp_path).stdout.split()


def test_strip_command_leaves_what_hydra_reads_as_overrides():
    assert strip_command("lmtrain pretrain model=b") == "lmtrain model=b"
    assert strip_command("lmtrain pretrain ") == "lmtrain "
    assert strip_command("lmtrain pretrain model=bert trainer.") == "lmtrain model=bert trainer."


def test_install_flag_of_a_command_prints_the_lmtrain_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lmtrain", "pretrain", "-sc", "install=bash"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout == script("bash") and "lmtrain-pretrain" not in result.stdout


def test_unknown_shell_is_a_user_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lmtrain", "completion", "tcsh"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "give one shell, bash, zsh, fish" in result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_completes_in_a_real_bash(tmp_path):
    shim = tmp_path / "bin" / "lmtrain"  # `lmtrain` on PATH, running this checkout
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m lmtrain "$@"\n')
    shim.chmod(0o755)
    commands = """
    eval "$(lmtrain completion bash)"
    complete_line() { COMP_LINE="$1"; COMP_POINT=${#1}; read -ra COMP_WORDS <<< "$1"; COMP_CWORD=$2
                      _lmtrain_completion; echo "${COMPREPLY[*]}"; }
    complete_line "lmtrain ev" 1
    complete_line "lmtrain pretrain trainer.max_s" 2
    complete_line "lmtrain pretrain model=ro" 2
    """
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", commands], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.splitlines() == ["evaluate", "trainer.max_steps=", "model=roberta"], result.stderr
