"""README and docs facts that users copy: the CPU-only torch install, and every `lmtrain` command line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# the pages users copy commands from: README, the docs site's pages, the guide for contributors
DOC_PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_says_how_to_install_the_cpu_only_torch_of_the_pinned_version():
    text = README.read_text(encoding="utf-8")
    pinned = set(re.findall(r"pip install torch==([\d.]+)", text))
    assert len(pinned) == 1, f"the README pins torch to more than one version: {pinned}"
    version = pinned.pop()
    assert f"pip install torch=={version} --index-url https://download.pytorch.org/whl/cpu" in text


def test_the_docs_pin_the_readmes_torch():
    pinned = set(re.findall(r"pip install torch==([\d.]+)", README.read_text(encoding="utf-8")))
    for page in DOC_PAGES:
        found = set(re.findall(r"torch==([\d.]+)", page.read_text(encoding="utf-8")))
        assert found <= pinned, f"{page.relative_to(ROOT)} pins torch {found}, README {pinned}"


_HYDRA_COMMANDS = ("pretrain", "finetune", "generate", "evaluate", "embed", "predict", "export")


def _command_lines(page: Path) -> list[tuple[str, list[str], list[str]]]:
    """Every `lmtrain <hydra command> ...` in the code blocks of ``page``, as (command, arguments, PYTHONPATH
    entries)."""
    import shlex

    text = page.read_text(encoding="utf-8")
    found = []
    for language, block in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if language not in ("", "bash", "sh"):  # a tree, a config, output: no command lines
            continue
        for line in block.replace("\\\n", " ").splitlines():  # a command continued with a backslash is one line
            if "<TAB>" in line:  # a completion example, not a command
                continue
            for part in re.sub(r"<[\w ]+>", "PLACEHOLDER", line).split("&&"):  # <run>, <gpt run>: a path
                words = shlex.split(part, comments=True) if "lmtrain" in part else []
                if "lmtrain" not in words or "..." in words:
                    continue
                start = words.index("lmtrain")
                paths = [w.split("=", 1)[1] for w in words[:start] if w.startswith("PYTHONPATH=")]
                rest = [w for w in words[start + 1 :] if not w.startswith("$")]  # "$@": a script's own arguments
                if rest and rest[0] in _HYDRA_COMMANDS and not {"-m", "--config-dir"} & set(rest):
                    found.append((rest[0], rest[1:], paths))
    return found


def test_readme_and_docs_command_lines_compose(monkeypatch):
    """Each command line of README and the docs composes and passes the range checks, as the CLI checks it
    before running (from the project root, as the example lines are run). Identical lines are checked once."""
    from lmtrain.cli.main import quote_free_text, validate_overrides
    from lmtrain.config import register_configs

    register_configs()
    assert len(_command_lines(README)) > 10
    lines: dict[tuple, list[str]] = {}
    for page in DOC_PAGES:
        for command, overrides, paths in _command_lines(page):
            lines.setdefault((command, tuple(overrides), tuple(paths)), []).append(str(page.relative_to(ROOT)))
    assert len(lines) > 60
    monkeypatch.chdir(ROOT)
    failures = []
    for (command, overrides, paths), pages in lines.items():
        for path in paths:
            monkeypatch.syspath_prepend(str(ROOT / path))
        try:
            validate_overrides(command, quote_free_text(list(overrides)))
        except Exception as error:  # collected, so one run names every stale line
            failures.append(f"{pages[0]}: lmtrain {command} {' '.join(overrides)}: {error}")
    assert failures == [], "\n".join(failures)
