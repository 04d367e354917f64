"""Find the class a plug's config names in ``_target_`` (a model family, an objective, a task).

Built-in plugs and a user's own are found the same way: by the dotted path in their schema or
YAML, imported with Hydra's own ``get_class``. Nothing else in lmtrain tests a plug's name.
"""

from __future__ import annotations

import importlib
from typing import Any

from lmtrain.errors import UserError


def plug_class(node: Any, group: str, base: type | None = None) -> type:
    """The class named by ``node._target_`` (``node`` is a config node, a dataclass, a dict or the path itself).

    Args:
        node: the plug's config (or its ``_target_`` string).
        group: the config group, for messages (``model``, ``objective``, ``task``).
        base: the class the plug must subclass, if any.
    Raises:
        UserError: no ``_target_``, a path that does not import, or a class of the wrong kind.
    """
    target = node if isinstance(node, str) else _target_of(node)
    if not target:
        raise UserError(f"{group}._target_ is not set: a {group} config names its plug class in `_target_` "
                        f"(its schema sets it; a YAML of your own extends a schema or sets `_target_: package.Class`).")
    module, _, name = target.rpartition(".")
    try:  # importlib, not Hydra's get_class: that one also logs its own error lines before ours
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as cause:
        raise UserError(f"{group}._target_={target} cannot be imported ({type(cause).__name__}: {cause}). "
                        "Put the package that defines it on PYTHONPATH (or install it), or fix the dotted path.") from None
    if base is not None and not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{group}._target_={target} is not a {base.__name__}: a {group} plug subclasses "
                        f"{base.__module__}.{base.__name__}.")
    return cls


def _target_of(node: Any) -> str | None:
    if isinstance(node, dict):
        return node.get("_target_")
    getter = getattr(node, "get", None)
    if callable(getter):
        return getter("_target_")
    return getattr(node, "_target_", None)
