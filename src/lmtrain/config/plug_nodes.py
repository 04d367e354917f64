"""Type a composed config's plug nodes (model, objective, task, embed's method) by the schema their plug declares.

Built-in presets name their schema in their defaults list, so Hydra types them while composing. A
user's own YAML may instead just name its plug in ``_target_``; the plug class's ``config_class``
then types the node here, before any work starts, so an unknown key or a wrong type is the same
one-paragraph error either way. The ``data`` node is typed by the plug that reads it (the task's or
the objective's ``data_config``) where nothing typed it yet, as in a run's saved config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lmtrain.errors import UserError

PLUG_GROUPS = ("model", "objective", "task", "embed")  # `embed`: lmtrain embed's word-vector method
# group -> the class its plug subclasses, by name: this layer sits below the plugs and imports none of them
PLUG_BASES = {
    "model": "lmtrain.models.families.ModelFamily",
    "objective": "lmtrain.objectives.plug.PretrainingObjective",
    "task": "lmtrain.tasks.base.Task",
    "embed": "lmtrain.embeddings.method.EmbeddingMethod",
}
DATA_READERS = ("task", "objective")  # the plugs whose ``data_config`` types the ``data`` node


def _untyped(node: Any) -> bool:
    from omegaconf import DictConfig, OmegaConf

    return isinstance(node, DictConfig) and OmegaConf.get_type(node) in (dict, None)


def _typed(node: Any, schema: type, where: str, command: str) -> Any:
    """``node`` merged into ``schema``; a key or value it refuses is a UserError naming ``where``."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except Exception as error:  # OmegaConf's validation errors: a key or a type the schema refuses
        key = getattr(error, "key", None)
        raise UserError(
            f"{where}.{key if key else ''}: {error}".split("\n")[0]
            + f" — {where} is typed by {schema.__module__}.{schema.__name__}; "
            f"use only its keys (`lmtrain {command} --cfg job` prints them)."
        ) from None


def type_plug_nodes(cfg: Any, command: str) -> Any:
    """``cfg`` with every untyped plug node merged into its plug's ``config_class`` (and an untyped ``data``
    node into the ``data_config`` of the plug that reads it).

    Raises:
        UserError: a plug that does not import or is not a plug of its group, or a key / value its schema refuses.
    """
    from omegaconf import DictConfig, open_dict

    from lmtrain.plugs import plug_class

    if not isinstance(cfg, DictConfig):
        return cfg
    for group in PLUG_GROUPS:
        node = cfg.get(group)
        if not _untyped(node) or not node.get("_target_"):
            continue
        schema = getattr(plug_class(node, group, PLUG_BASES[group]), "config_class", None)
        if isinstance(schema, type) and dataclasses.is_dataclass(schema):
            with open_dict(cfg):
                cfg[group] = _typed(node, schema, f"{group}={node.get('name', '?')}", command)
    data_group = next((name for name in DATA_READERS if cfg.get(name) is not None), None)
    reader = cfg.get(data_group) if data_group else None
    if data_group and _untyped(cfg.get("data")) and reader is not None and reader.get("_target_"):
        schema = getattr(plug_class(reader, data_group, PLUG_BASES[data_group]), "data_config", None)
        if schema is not None:
            with open_dict(cfg):
                cfg.data = _typed(cfg.data, schema, "data", command)
    return cfg


def config_objects(cfg: Any, command: str) -> Any:
    """The composed config of ``lmtrain <command>`` as its schemas' dataclasses, interpolations resolved:
    what a command's ``run`` hands to everything below it (a user's plug node becomes its plug's schema).

    Raises:
        UserError: as :func:`type_plug_nodes`, or a value out of its range (when ``cfg`` was composed
            without the CLI's checks, as in tests).
    """
    from omegaconf import OmegaConf

    from lmtrain.config.checks import ConfigRangeError, range_error

    typed = type_plug_nodes(cfg, command)
    try:
        return OmegaConf.to_object(typed)
    except ConfigRangeError as error:
        raise range_error(error, command) from None
