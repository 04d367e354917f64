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
