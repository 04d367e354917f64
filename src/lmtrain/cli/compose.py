"""Composing a command's config before Hydra runs it: the shipped configs' folder, the overrides composed
once and their plug nodes typed, and any failure explained as one paragraph (with the closest option or
key, and the plug schema that refused a key)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from lmtrain.cli.args import overrides_only
from lmtrain.commands.config_validation import check_config
from lmtrain.errors import UserError


def config_dir() -> Path:
    """Directory holding the shipped YAML configs (works from a checkout and from a wheel)."""
    return Path(str(resources.files("lmtrain") / "configs"))


def _explain(error: BaseException) -> str:
    """Join an exception and its causes into one line, dropping Hydra's '+key' hint."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        text = " ".join(str(current).split())
        text = re.sub(r"\s*To append to your (config|default list) use \+\S+", "", text)
        text = re.sub(r"\s*(full_key|Config search path): .*", "", text)
        if text and "$VALUE" not in text and not any(text in part for part in parts):
            parts.append(text.rstrip("."))
        current = current.__cause__ or current.__context__
    return ": ".join(parts)


def _schema_hint(message: str) -> str:
    """`` (… is not a key of the transformer model family: …; the elmo model family reads it)`` when ``message``
    is a plug schema refusing a key (naming the schemas of the same kind that do read it, if any)."""
    import dataclasses

    from lmtrain.config import PLUG_SCHEMAS

    found = re.search(r"Key '(\w+)' not in '(\w+)'", message)
    if not found:
        return ""
    key, schema = found.groups()
    for group, schemas in PLUG_SCHEMAS.items():
        for name, cls in schemas.items():
            if cls.__name__ == schema:
                kind = {
                    "schema/model": "model family",
                    "schema/objective": "objective",
                    "schema/task": "task",
                    "schema/data": "data schema",
                    "schema/embed": "word-vector method",
                }[group]
                doc = (cls.__doc__ or schema).splitlines()[0].rstrip(".")  # a dataclass always has a docstring
                readers = [
                    other
                    for other, other_cls in schemas.items()
                    if dataclasses.is_dataclass(other_cls) and key in {f.name for f in dataclasses.fields(other_cls)}
                ]
                plural = "s read" if len(readers) > 1 else " reads"
                read_by = f"; the {' and '.join(readers)} {kind}{plural} it" if readers else ""
                return f" ({key} is not a key of the {name} {kind}: {doc[0].lower()}{doc[1:]}{read_by})"
    return ""


def compose_command(command: str, args: list[str], with_hydra: bool = False, hints: bool = True):
    """``command``'s config composed with the overrides in ``args``, its plug nodes typed.

    Args:
        with_hydra: keep the ``hydra`` node (the choices made and the config sources), as help needs.
        hints: add the closest option or key to an error about an unknown one.
    Raises:
        UserError: an unknown option, a misspelt key or a value of the wrong type.
    """
    from lmtrain.cli.hints import typo_hint

    overrides = overrides_only(args)
    try:
        cfg = _compose(command, overrides, with_hydra)
    except Exception as error:  # Hydra and OmegaConf raise many types; all mean a config problem
        message = _explain(error)
        hint = (
            typo_hint(str(error), overrides, lambda others, hydra: compose_command(command, others, hydra, hints=False))
            if hints
            else ""
        )
        raise UserError(
            f"invalid configuration for `lmtrain {command}`: {message}{_schema_hint(message)}. "
            f"{f'{hint} ' if hint else ''}Run `lmtrain {command} --help` to list the config groups and their options, "
            f"or `lmtrain {command} --cfg job` to print the composed config with every key."
        ) from None
    from lmtrain.config.plug_nodes import type_plug_nodes

    return type_plug_nodes(cfg, command)


def _compose(command: str, overrides: list[str], with_hydra: bool):
    """``command``'s config composed by Hydra with ``overrides`` (Hydra's exceptions raised as they are)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lmtrain.config import register_configs

    register_configs()  # the schemas the presets extend, also when called outside the command line
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            return compose(config_name=command, overrides=overrides, return_hydra_config=with_hydra)
    finally:
        GlobalHydra.instance().clear()


def validate_overrides(command: str, args: list[str]) -> None:
    """Compose ``command``'s config with ``args`` and raise UserError if that fails."""
    given = [arg.split("=", 1)[0] for arg in overrides_only(args) if "=" in arg]
    check_config(compose_command(command, args), command, given)  # before Hydra makes the run directory
