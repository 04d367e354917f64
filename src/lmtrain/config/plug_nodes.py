"""Type a composed config's plug nodes (model, objective, task) by the schema their plug declares.

Built-in presets name their schema in their defaults list, so Hydra types them while composing. A
user's own YAML may instead just name its plug in ``_target_``; the plug class's ``config_class``
then types the node here, before any work starts, so an unknown key or a wrong type is the same
one-paragraph error either way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lmtrain.errors import UserError

PLUG_GROUPS = ("model", "objective", "task")


def type_plug_nodes(cfg: Any, command: str) -> Any:
    """``cfg`` with every untyped plug node merged into its plug's ``config_class``.

    Raises:
        UserError: a plug that does not import, or a key / value its schema refuses.
    """
    from omegaconf import DictConfig, OmegaConf, open_dict

    from lmtrain.plugs import plug_class

    for group in PLUG_GROUPS:
        node = cfg.get(group) if isinstance(cfg, DictConfig) else None
        if not isinstance(node, DictConfig) or OmegaConf.get_type(node) not in (dict, None) or not node.get("_target_"):
            continue
        schema = getattr(plug_class(node, group), "config_class", None)
        if schema is None or not dataclasses.is_dataclass(schema):
            continue
        try:
            typed = OmegaConf.merge(OmegaConf.structured(schema), node)
        except Exception as error:  # OmegaConf's validation errors: a key or a type the schema refuses
            key = getattr(error, "key", None)
            raise UserError(f"{group}.{key if key else ''}: {error}".split("\n")[0] +
                            f" — {group}={node.get('name', '?')} is typed by {schema.__module__}.{schema.__name__}; "
                            f"use only its keys (`lmtrain {command} --cfg job` prints them).") from None
        with open_dict(cfg):
            cfg[group] = typed
    return cfg


def config_objects(cfg: Any, command: str) -> Any:
    """The composed config of ``lmtrain <command>`` as its schemas' dataclasses, interpolations resolved:
    what a command's ``run`` hands to everything below it (a user's plug node becomes its plug's schema).

    Raises:
        UserError: as :func:`type_plug_nodes`.
    """
    from omegaconf import OmegaConf

    return OmegaConf.to_object(type_plug_nodes(cfg, command))
