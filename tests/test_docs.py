"""The docs site: its generated Reference covers every key and preset, every page is in the nav, every link
between pages resolves, and no page leans on anything outside the repository.

`mkdocs build --strict` checks the same links and anchors where mkdocs is installed (`.[docs]`); these tests
need only the dev extra.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
USER_PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    """The pages scripts/docs_reference.py generates: {path under docs/: markdown}."""
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pages()


def test_the_schema_reference_lists_every_field_of_every_schema(reference):
    from lmtrain.config import PLUG_SCHEMAS, SCHEMAS

    page = reference["reference/schemas.md"]
    sections = dict(re.findall(r"^### (\w+)\n(.*?)(?=^##|\Z)", page, re.S | re.M))
    schemas = [*SCHEMAS.values(), *(schema for group in PLUG_SCHEMAS.values() for schema in group.values())]
    for schema in schemas:
        assert schema.__name__ in sections, f"{schema.__name__} has no section in reference/schemas.md"
        for field in dataclasses.fields(schema):
            assert f"| `{field.name}` |" in sections[schema.__name__], f"{schema.__name__}.{field.name} is not listed"


def test_the_commands_reference_describes_every_command(reference):
    from lmtrain.cli.main import COMMANDS, NATIVE_COMMANDS

    page = reference["reference/commands.md"]
    for command in [*COMMANDS, *NATIVE_COMMANDS, "resume"]:
        assert f"\n## {command}\n" in page
    assert "| `trainer.max_steps` | `int | null` |" in page  # a key with its type


def test_the_presets_reference_lists_every_preset(reference):
    from lmtrain.cli.main import config_dir

    page = reference["reference/presets.md"]
    for path in config_dir().glob("*/*.yaml"):
        assert f"### {path.parent.name}: {path.stem}\n" in page


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists(reference):
    nav = set(_nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]))
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")} | set(reference)
    assert nav == pages, f"not in the nav: {sorted(pages - nav)}; in the nav, no page: {sorted(nav - pages)}"


def test_links_between_pages_resolve(reference):
    broken = []
    for page in USER_PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path = target.split("#", 1)[0]
            if not path or re.match(r"\w+://|mailto:", path):
                continue
            resolved = (page.parent / path).resolve()
            generated = resolved.is_relative_to(DOCS) and str(resolved.relative_to(DOCS)) in reference
            if not (resolved.exists() or generated):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_page_leans_on_anything_outside_the_repository(page):
    """No path outside the repository, no issue number, no commit hash as evidence (a benchmark's dated header
    names the commit it measured: those lines start with `> **Measured**` or continue one)."""
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/data" not in text
    assert not re.search(r"\bissues? #?\d+|(?<![\w&])#\d+\b", text, re.I), "an issue number"
    header = False
    for number, line in enumerate(text.splitlines(), 1):
        header = line.startswith("> **Measured**") or (header and line.startswith("> "))
        if not header:
            assert not _HASH.search(line), f"line {number}: a commit hash outside a benchmark's header: {line}"
