"""Declared dependencies: every package lmtrain imports is declared, and scripts/dependency_floors.py reads the floors.

The script itself (a venv with every floor installed, then tiny runs) takes minutes and is run by hand.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from dependency_floors import FloorsError, apply_overrides, main, normalise, read_floors  # noqa: E402


def imported_packages(source: Path) -> dict[str, bool]:
    """``{top-level package: imported at module level}`` of the absolute imports in ``source``."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    at_top = {id(node) for node in tree.body}
    for node in tree.body:  # `try:` / `if TYPE_CHECKING:` blocks at module level count as module level too
        if isinstance(node, (ast.Try, ast.If)):
            at_top |= {id(child) for child in ast.walk(node)}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            found[top] = found.get(top, False) or id(node) in at_top
    return found


def declared() -> tuple[set[str], set[str]]:
    """The normalised names of ``[project] dependencies`` and of every optional extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
    required = {normalise(name.match(entry)[0]) for entry in project["dependencies"]}
    extras = {
        normalise(name.match(entry)[0]) for entries in project["optional-dependencies"].values() for entry in entries
    }
    return required, extras


def third_party_imports() -> dict[str, bool]:
    """Every package the sources of lmtrain import that is neither the standard library nor lmtrain."""
    found: dict[str, bool] = {}
    for source in sorted((REPO / "src" / "lmtrain").rglob("*.py")):
        for top, module_level in imported_packages(source).items():
            if top not in sys.stdlib_module_names and top not in ("lmtrain", "__future__"):
                found[top] = found.get(top, False) or module_level
    return found


def test_every_imported_package_is_declared():
    required, extras = declared()
    providers = packages_distributions()
    imports = third_party_imports()
    assert {"torch", "seqeval", "scipy", "yaml", "PIL"} <= set(imports)  # the walk sees lazy imports too
    for top, module_level in imports.items():
        # a package that is not installed here (wandb, mlflow) is named as its distribution
        distributions = {normalise(d) for d in providers.get(top, [top])}
        assert distributions & (required | extras), (
            f"{top} is imported but its distribution {distributions} is not declared in pyproject.toml"
        )
        if not distributions & required:  # an optional extra is imported only where it is used
            assert not module_level, f"{top} (an optional extra) is imported at module level"


def test_the_floors_are_read_from_pyproject():
    floors = read_floors(REPO / "pyproject.toml")
    required, _ = declared()
    assert {normalise(name) for name in floors} == required
    assert all(re.fullmatch(r"\d+(\.\d+)*", version) for version in floors.values()), floors


def test_a_dependency_without_a_floor_is_refused(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["torch>=2.6,<3", "rich >= 13", "numpy"]\n')
    with pytest.raises(FloorsError, match="dependency 'numpy' has no floor: write it as name>=version"):
        read_floors(pyproject)
    pyproject.write_text('[project]\ndependencies = ["torch>=2.6,<3", "rich >= 13"]\n')
    assert read_floors(pyproject) == {"torch": "2.6", "rich": "13"}


def test_overrides_replace_a_floor_by_its_normalised_name():
    floors = {"scikit-learn": "1.1.3", "PyYAML": "6.0"}
    pins = apply_overrides(floors, ["scikit_learn==1.2.0", "pyyaml==6.0.1", "pyarrow==15.0.0"])
    assert pins == {"scikit-learn": "1.2.0", "PyYAML": "6.0.1", "pyarrow": "15.0.0"}


def test_a_malformed_override_exits_2_with_the_form_to_use(capsys):
    assert main(["--override", "scipy>=1.9", "--steps", "import"]) == 2
    assert "--override scipy>=1.9: write it as name==version, e.g. scipy==1.9.3" in capsys.readouterr().err


def test_an_unknown_step_exits_2_naming_the_steps(capsys):
    assert main(["--steps", "pretrian"]) == 2
    err = capsys.readouterr().err
    assert "--steps: no step pretrian; the steps are import, pretrain," in err and "fsdp 2 processes" in err
