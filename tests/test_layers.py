"""Imports point down: every import inside lmtrain goes to its own layer or a lower one.

The layers, lowest first. A module belongs to the first layer whose entry names it or a package above
it (``lmtrain.models.heads`` belongs to ``lmtrain.models``). Imports within one layer are free.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lmtrain

LAYERS: list[tuple[str, ...]] = [
    # leaves: errors, file formats and safe writes, the run folder's lock, status, record and job log, plug lookup
    (
        "errors",
        "files",
        "run_folder.lock",
        "run_folder.status",
        "run_folder.manifest",
        "run_folder.job_log",
        "run_folder.provenance",
        "plugs",
        "hub",
        "shell_words",
    ),
    ("config",),  # the schemas, their range checks, config diffs and durations
    ("run_folder", "runs"),  # the run folder: its layout, its claim and placement; reading and plotting runs
    ("data", "kernels"),
    ("models",),
    ("objectives", "generation"),
    ("training",),  # the one loop and the run assembly; it knows no task
    ("tasks", "embeddings"),  # the fine-tuning tasks and word vectors, trained by the loop
    ("commands",),  # the commands, and the check of a whole composed config through the plugs it names
    ("cli", "__main__"),
]

# (importing module, imported module) -> why it may point up. Keep it empty.
ALLOWED: dict[tuple[str, str], str] = {}

PACKAGE_ROOT = Path(lmtrain.__file__).parent


def layer_of(module: str) -> int:
    """The index in LAYERS of a dotted module name under lmtrain (the package itself, holding only its
    version, is the bottom). An entry may name a module inside a package (``run_folder.lock``)."""
    parts = module.split(".")
    if parts == ["lmtrain"]:
        return 0
    # the longest entry that names the module or a package above it: ``run_folder.lock`` before ``run_folder``
    for depth in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[1 : depth + 1])
        for index, names in enumerate(LAYERS):
            if prefix in names:
                return index
    raise AssertionError(f"{module} is in no layer: add its top-level name to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    """``lmtrain.models.heads`` for .../lmtrain/models/heads.py; a package's name for its __init__.py."""
    parts = ["lmtrain", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every lmtrain module that ``source`` (the text of ``module``) imports, at module level or inside
    functions, with its line."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(_submodule(target, alias.name), node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name == "lmtrain" or name.startswith("lmtrain.")]


def _submodule(target: str, name: str) -> str:
    """``from lmtrain.files import checkpoints`` imports the module named after the dot; ``from lmtrain
    import __version__`` the package."""
    folder = PACKAGE_ROOT.joinpath(*target.split(".")[1:])
    is_module = target.split(".")[0] == "lmtrain" and ((folder / name).is_dir() or (folder / f"{name}.py").is_file())
    return f"{target}.{name}" if is_module else target


def source_files() -> list[Path]:
    """Every Python module of the package."""
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in source_files():
        layer_of(module_name(path))


def test_imports_point_down():
    upward: set[str] = set()
    for path in source_files():
        module = module_name(path)
        for target, line in imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            if layer_of(target) > layer_of(module) and (module, target) not in ALLOWED:
                upward.add(f"{module}:{line} imports {target} (layer {layer_of(target)} > {layer_of(module)})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_check_sees_function_level_and_relative_imports():
    source = "from .heads import Head\n\ndef f():\n    from lmtrain.training import checkpoint\n"
    found = imported_modules(source, "lmtrain.models.probe")
    assert found == [("lmtrain.models.heads", 1), ("lmtrain.training.checkpoint", 4)]
    assert layer_of("lmtrain.training") > layer_of("lmtrain.models.probe")


def test_from_the_package_names_the_module():
    assert imported_modules("from lmtrain import plugs\n", "lmtrain.models.loading") == [("lmtrain.plugs", 1)]
    assert imported_modules("from lmtrain.files import checkpoints\n", "lmtrain.models.loading") == [
        ("lmtrain.files.checkpoints", 1)
    ]
    assert layer_of("lmtrain.run_folder.lock") < layer_of("lmtrain.config") < layer_of("lmtrain.run_folder.claim")


def test_every_module_imports():
    """A moved or renamed name fails here, not first in the command that happens to import it."""
    import importlib

    for path in source_files():
        importlib.import_module(module_name(path))


def test_every_imported_name_exists():
    """``from lmtrain.x import name`` inside functions too: the name is still there."""
    import importlib
    import importlib.util

    missing = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("lmtrain"):
                module = importlib.import_module(node.module)
                missing += [
                    f"{module_name(path)}:{node.lineno} {node.module}.{alias.name}"
                    for alias in node.names
                    if not hasattr(module, alias.name)
                    and importlib.util.find_spec(f"{node.module}.{alias.name}") is None
                ]
    assert missing == []
