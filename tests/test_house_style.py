"""The house style's measurable rules, checked on every module of the package: small modules, short
functions, few loose modules at the root, and a docstring on everything public."""

from __future__ import annotations

import ast
from pathlib import Path

import lmtrain

PACKAGE_ROOT = Path(lmtrain.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_ROOT_MODULES = 8  # a new module goes into the package of its concept


def source_files() -> list[Path]:
    """Every Python module of the package."""
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def where(path: Path, line: int | None = None) -> str:
    """``lmtrain/models/heads.py:12``: a place the way a reader finds it."""
    name = str(path.relative_to(PACKAGE_ROOT.parent))
    return name if line is None else f"{name}:{line}"


def public_definitions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    """The module's public functions and classes, and the public methods of its public classes (nested
    too); a function's own inner helpers are not part of the module's interface."""
    found = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith(
                "_"
            ):
                found.append(node)
                if isinstance(node, ast.ClassDef):
                    visit(node.body)

    visit(tree.body)
    return found


def test_no_module_is_longer_than_the_limit():
    long = [
        f"{where(path)}: {lines} lines"
        for path in source_files()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert long == [], f"modules over {MAX_MODULE_LINES} lines; split them by responsibility"


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{where(path, node.lineno)} {node.name}: {lines} lines")
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines"


def test_few_modules_sit_loose_at_the_package_root():
    loose = sorted(path.name for path in PACKAGE_ROOT.glob("*.py"))
    assert len(loose) <= MAX_ROOT_MODULES, (
        f"{len(loose)} modules at the root ({', '.join(loose)}); put the new one in the package of its concept"
    )


def test_every_public_function_and_class_has_a_docstring():
    missing = [
        f"{where(path, node.lineno)} {node.name}"
        for path in source_files()
        for node in public_definitions(ast.parse(path.read_text(encoding="utf-8")))
        if ast.get_docstring(node) is None
    ]
    assert missing == [], "public functions and classes without a docstring (one line saying what it does)"


def test_the_checks_see_what_they_are_meant_to():
    source = (
        "def shown():\n    pass\n\n"
        "class Shown:\n    def method(self):\n        pass\n\n    def _hidden(self):\n        pass\n\n"
        "class _Private:\n    def method(self):\n        pass\n\n"
        "def documented():\n    '''Says what it does.'''\n    def inner():\n        pass\n"
    )
    names = [(node.name, ast.get_docstring(node)) for node in public_definitions(ast.parse(source))]
    assert names == [("shown", None), ("Shown", None), ("method", None), ("documented", "Says what it does.")]
