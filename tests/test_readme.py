"""README facts that users copy: the CPU-only torch install."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_says_how_to_install_the_cpu_only_torch_of_the_pinned_version():
    text = README.read_text(encoding="utf-8")
    pinned = set(re.findall(r"pip install torch==([\d.]+)", text))
    assert len(pinned) == 1, f"the README pins torch to more than one version: {pinned}"
    version = pinned.pop()
    assert f"pip install torch=={version} --index-url https://download.pytorch.org/whl/cpu" in text


_HYDRA_COMMANDS = ("pretrain", "finetune", "generate", "evaluate", "embed", "predict", "export")


def _readme_command_lines() -> list[tuple[str, list[str], list[str]]]:
    """Every `lmtrain <hydra command> ...` in README's code blocks, as (command, arguments, PYTHONPATH entries)."""
    import shlex

    text = README.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a command continued with a backslash is one line
            if "<TAB>" in line:  # a completion example, not a command
                continue
            for part in re.sub(r"<[\w ]+>", "PLACEHOLDER", line).split("&&"):  # <run>, <gpt run>: a path
                words = shlex.split(part, comments=True) if "lmtrain" in part else []
                if "lmtrain" not in words or "..." in words:
                    continue
                start = words.index("lmtrain")
                paths = [w.split("=", 1)[1] for w in words[:start] if w.startswith("PYTHONPATH=")]
                rest = words[start + 1:]
                if rest and rest[0] in _HYDRA_COMMANDS and not {"-m", "--config-dir"} & set(rest):
                    found.append((rest[0], rest[1:], paths))
    return found


def test_readme_command_lines_compose(monkeypatch):
    """Each README command line composes and passes the range checks, as the CLI checks it before running
    (from the project root, as README's example lines are run)."""
    from lmtrain.cli.main import quote_free_text, validate_overrides
    from lmtrain.config import register_configs

    register_configs()
    lines = _readme_command_lines()
    assert len(lines) > 40
    monkeypatch.chdir(README.parent)
    failures = []
    for command, overrides, paths in lines:
        for path in paths:
            monkeypatch.syspath_prepend(str(README.parent / path))
        try:
            validate_overrides(command, quote_free_text(overrides))
        except Exception as error:  # collected, so one run names every stale line
            failures.append(f"lmtrain {command} {' '.join(overrides)}: {error}")
    assert failures == [], "\n".join(failures)
