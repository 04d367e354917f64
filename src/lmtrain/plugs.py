"""Find the class a plug's config names in ``_target_`` (a model family, an objective, a task).

Built-in plugs and a user's own are found the same way: by the dotted path in their schema or
YAML. The path's form is checked before anything is imported (importing a module runs its code),
and the class it names must subclass the plug's base. Nothing else in lmtrain tests a plug's name.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from lmtrain.errors import UserError

# _target_ -> (the module path folder a run imported it from, the run's record naming it): read from the
# records of the runs this process loads (lmtrain.run_folder.provenance), for the message of a failed import
_ORIGINS: dict[str, tuple[str | None, str]] = {}


def remember_origins(origins: dict[str, str | None], record: str) -> None:
    """Note where a run found its plugs (``_target_`` -> module path folder), as recorded in the file ``record``.

    Used only to say, when such a plug does not import, where the run found it: nothing is added to the
    module path (importing from a folder a run folder names would run code that folder chose).
    """
    for target, folder in origins.items():
        _ORIGINS[target] = (folder, record)


def _import_advice(target: str) -> str:
    """What to do when ``target`` does not import: the recorded folder and command when a run named one."""
    folder, record = _ORIGINS.get(target, (None, None))
    if record is None:
        return "Put the package that defines it on PYTHONPATH (or install it), or fix the dotted path."
    if folder is None:
        return (
            f"The run was trained with it (as {record} records) but could not say from which folder; put the "
            "package that defines it on PYTHONPATH (or install it)."
        )
    return (
        f"The run found it in {folder} (recorded in {record}). lmtrain does not import code from a folder "
        "named in a run folder on its own; if you trust that code, put the folder on the module path: "
        f"`PYTHONPATH={folder} lmtrain ...` (or install its package)."
    )


def check_target(target: Any, key: str) -> str:
    """``target`` if it has the form of a plug class's path: ``package.module.Class``, every part an identifier.

    A relative path (``.foo.Bar``) and a path into the standard library (``this.Foo``, ``os.system``) are
    refused: a plug lives in lmtrain or in the user's own package, so neither is ever one.

    Args:
        target: the ``_target_`` value.
        key: the config key that holds it, for the message (``model._target_``).
    Raises:
        UserError: ``target`` is not such a path.
    """
    parts = target.split(".") if isinstance(target, str) else []
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise UserError(
            f"{key}={target!r} is not the dotted path of a class: a plug's `_target_` is "
            "`package.module.Class`, each part a Python identifier (no relative `.module`). Fix the path."
        )
    if parts[0] in sys.stdlib_module_names:
        raise UserError(
            f"{key}={target} names a module of Python's standard library, which holds no lmtrain plug; "
            "it is not imported. Name your plug's class (`package.module.Class`) or a shipped preset."
        )
    return target


def plug_class(node: Any, group: str, base: type | str | None = None) -> type:
    """The class named by ``node._target_`` (``node`` is a config node, a dataclass, a dict or the path itself).

    Args:
        node: the plug's config (or its ``_target_`` string).
        group: the config group, for messages (``model``, ``objective``, ``task``).
        base: the class the plug must subclass (or its dotted path, for callers below the plugs'
            layer), if any.
    Raises:
        UserError: no ``_target_``, a path of the wrong form or that does not import, or a class of the wrong kind.
    """
    target = node if isinstance(node, str) else _target_of(node)
    if not target:
        raise UserError(
            f"{group}._target_ is not set: a {group} config names its plug class in `_target_` "
            f"(its schema sets it; a YAML of your own extends a schema or sets `_target_: package.Class`)."
        )
    module, _, name = check_target(target, f"{group}._target_").rpartition(".")
    try:  # importlib, not Hydra's get_class: that one also logs its own error lines before ours
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as cause:
        raise UserError(
            f"{group}._target_={target} cannot be imported ({type(cause).__name__}: {cause}). {_import_advice(target)}"
        ) from None
    if base is not None and not _subclasses(cls, base):
        base_name = base if isinstance(base, str) else f"{base.__module__}.{base.__name__}"
        raise UserError(
            f"{group}._target_={target} is not a {base_name.rpartition('.')[2]}: a {group} plug subclasses {base_name}."
        )
    return cls


def _subclasses(cls: Any, base: type | str) -> bool:
    if not isinstance(cls, type):
        return False
    if isinstance(base, type):
        return issubclass(cls, base)
    return any(f"{parent.__module__}.{parent.__qualname__}" == base for parent in cls.__mro__)


def _target_of(node: Any) -> str | None:
    if isinstance(node, dict):
        return node.get("_target_")
    getter = getattr(node, "get", None)
    if callable(getter):
        return getter("_target_")
    return getattr(node, "_target_", None)
