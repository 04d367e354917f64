"""What `lmtrain --help` and `lmtrain <command> --help` print.

The top-level usage lists the commands and the presets of every config group, read from the
``configs/`` folders. A command's help is written from its composed config: the config groups of
the command with each option's one-line description (the first comment of its YAML) and the option
chosen, then every key of the chosen presets with its value and its description from the schema
(:mod:`lmtrain.config.descriptions`), one block per config node. A user's own plug, selected with
its YAML on ``hydra.searchpath``, is described the same way through its schema.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

# groups the presets of which the top-level usage lists: (group, the commands that choose it)
PRESET_GROUPS = (
    ("model", "pretrain"),
    ("objective", "pretrain"),
    ("data", "pretrain"),
    ("tokenizer", "pretrain, finetune"),
    ("task", "finetune"),
    ("method", "embed"),
    ("experiment", "pretrain, finetune"),
    ("debug", "pretrain, finetune"),
)
# config groups lmtrain composes internally: never chosen by a user
_INTERNAL_GROUPS = ("debug_model", "schema", "hydra")
SUMMARY_WIDTH = 110  # an option's description is cut to this many characters


def group_options(group: str, sources: Iterable[Path]) -> list[str]:
    """The options of config ``group``: the YAML file names under ``<source>/<group>/`` of every source."""
    names = {path.stem for source in sources for path in _group_files(source, group)}
    return sorted(names)


def preset_summary(group: str, option: str, sources: Iterable[Path]) -> str:
    """The first comment paragraph of ``<group>/<option>.yaml`` (the first source that has it), cut to one line."""
    for source in sources:
        path = source / group / f"{option}.yaml"
        if path.is_file():
            return _first_comment(path.read_text(encoding="utf-8"))
    return ""


def with_options(descriptions: dict[str, str], config_dir: Path) -> dict[str, str]:
    """``descriptions`` with each ``{group}`` replaced by that group's options (``bert|gpt|...``)."""
    options = {group: "|".join(group_options(group, [config_dir])) for group, _ in PRESET_GROUPS}
    return {name: text.format(**options) for name, text in descriptions.items()}


def usage(described: dict[str, str], config_dir: Path) -> str:
    """`lmtrain --help`: the commands (name -> description) and the presets of each config group."""
    options = {group: group_options(group, [config_dir]) for group, _ in PRESET_GROUPS}
    width = max(len(name) for name in described)
    group_width = max(len(group) for group, _ in PRESET_GROUPS)
    return "\n".join(
        [
            "usage: lmtrain <command> [group=option ...] [key=value ...] [-m] [--cfg job] [--help]",
            "",
            "commands:",
            *[f"  {name.ljust(width)}  {text}" for name, text in described.items()],
            "",
            "presets (choose with group=option):",
            *[f"  {group.ljust(group_width)}  {', '.join(options[group])}  ({used})" for group, used in PRESET_GROUPS],
            "",
            "Every setting is a Hydra config under configs/; override any of them on the command line,",
            "e.g. `lmtrain pretrain model=bert trainer.max_steps=200 optim.lr=3e-4`.",
            "`lmtrain <command> [group=option ...] --help` describes the groups and options of a command and every key",
            "of the chosen presets, with its default (e.g. `lmtrain pretrain model=elmo --help`).",
            "`lmtrain pretrain debug=tiny [model=...]` is a run of seconds (2 layers, width 32, 20 steps): "
            "a smoke test;",
            "`lmtrain finetune task=... debug=tiny` cuts a task's recipe to 20 steps the same way.",
            'Tab completion of commands, groups and keys: eval "$(lmtrain completion bash)" (or zsh; fish: '
            "lmtrain completion fish | source).",
        ]
    )


def command_help(command: str, description: str, cfg: Any, schema: type | None) -> str:
    """`lmtrain <command> --help` for ``cfg``, the command's config composed with the user's overrides.

    Args:
        command: the command name.
        description: its one-line description.
        cfg: the composed config, with its ``hydra`` node (choices and config sources), plug nodes typed.
        schema: the command's schema (types the top-level keys), if it has one.
    """
    sources = config_sources(cfg)
    choices = {
        group: option
        for group, option in cfg.hydra.runtime.choices.items()
        if not group.startswith(_INTERNAL_GROUPS) and "@" not in group and group_options(group, sources)
    }
    lines = [
        f"lmtrain {command}: {description}",
        f"usage: lmtrain {command} [group=option ...] [key=value ...] [-m] [--cfg job]",
        "",
    ]
    if choices:
        lines += ["== Config groups (group=option; * marks the one chosen) ==", *_group_lines(choices, sources), ""]
    lines += [
        "== Keys of the chosen presets (key=value: the default, then what it sets) ==",
        *_key_lines(cfg, schema),
        "",
        "More:",
        f"  lmtrain {command} --cfg job              the composed config as YAML",
        f"  lmtrain {command} -m key=a,b             a sweep (one run directory per job)",
        f"  lmtrain {command} hydra.run.dir=DIR      choose the run directory",
        "  lmtrain --help                          every command and preset",
    ]
    if command == "pretrain":
        lines.append("  lmtrain pretrain debug=tiny             a run of seconds for smoke tests, any model=")
    return "\n".join(lines)


def without_sweeps(args: list[str]) -> list[str]:
    """``args`` without the overrides that sweep (``key=a,b``, ``key=range(...)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    kept = []
    for arg in args:
        try:
            sweeps = "=" in arg and not arg.startswith("-") and parser.parse_override(arg).is_sweep_override()
        except Exception:  # not an override Hydra parses: composing reports it
            sweeps = False
        if not sweeps:
            kept.append(arg)
    return kept


def config_sources(cfg: Any) -> list[Path]:
    """The folders configs are read from: lmtrain's own, then those on ``hydra.searchpath``."""
    folders = []
    for source in cfg.hydra.runtime.config_sources:
        if source.provider == "hydra":
            continue
        if source.schema == "file":
            folders.append(Path(source.path))
        elif source.schema == "pkg":
            try:
                folders.append(Path(str(resources.files(source.path.replace("/", ".")))))
            except (ModuleNotFoundError, TypeError):
                continue
    return folders


def _group_files(source: Path, group: str) -> list[Path]:
    folder = source / group
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def _first_comment(text: str) -> str:
    """The first paragraph of a YAML file's leading comments (not the ``@package`` line), on one line."""
    paragraph: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if "@package" in stripped and not paragraph:
            continue
        body = stripped[1:] if stripped.startswith("#") else None
        if body is None or body.startswith("  ") or not body.strip():  # code, a command line or a blank comment
            if paragraph:
                break
            continue
        paragraph.append(body.strip())
    return textwrap.shorten(" ".join(paragraph), SUMMARY_WIDTH, placeholder=" ...")


def _group_lines(choices: dict[str, str | None], sources: list[Path]) -> list[str]:
    lines = []
    for group in sorted(choices):
        chosen = choices[group]
        lines.append(f"{group}:" + ("" if chosen else "  (none chosen)"))
        options = group_options(group, sources)
        width = max(len(option) for option in options)
        for option in options:
            mark = "*" if option == chosen else " "
            lines.append(f"  {mark} {option.ljust(width)}  {preset_summary(group, option, sources)}".rstrip())
    return lines


def _key_lines(cfg: Any, schema: type | None) -> list[str]:
    """Every key of ``cfg`` (but ``hydra``) as ``key=value  description``, one block per config node."""
    from omegaconf import DictConfig

    from lmtrain.config.descriptions import field_descriptions, schema_summary

    top = field_descriptions(schema) if schema else {}
    loose = [key for key in cfg if key != "hydra" and not isinstance(cfg._get_node(key), DictConfig)]
    blocks: list[tuple[str, Any, type | None, list[str] | None]] = [("", cfg, schema, loose)] if loose else []
    for key in cfg:
        node = cfg._get_node(key)
        if key != "hydra" and isinstance(node, DictConfig):
            blocks.append((str(key), node, _schema_of(node), None))
    lines: list[str] = []
    for prefix, node, node_schema, keys in blocks:
        if prefix:
            about = schema_summary(node_schema) if node_schema else top.get(prefix, "")
            named = f"{node_schema.__name__}: " if node_schema else ""
            lines.append(f"{prefix}  ({named}{about})" if about or named else prefix)
        else:
            lines.append("(top level)")
        rows = _rows(node, prefix, node_schema, keys)
        width = min(max((len(row[0]) for row in rows), default=0), 44)
        lines += [f"  {key.ljust(width)}  {text}".rstrip() for key, text in rows]
        lines.append("")
    return lines[:-1]


def _rows(node: Any, prefix: str, schema: type | None, keys: list[str] | None) -> list[tuple[str, str]]:
    """``(key=value, description)`` of each leaf under ``node``; nested typed nodes are walked too."""
    from omegaconf import DictConfig

    from lmtrain.config.descriptions import field_descriptions

    descriptions = field_descriptions(schema) if schema else {}
    rows = []
    for key in keys if keys is not None else list(node):
        child = node._get_node(key)
        full = f"{prefix}.{key}" if prefix else str(key)
        child_schema = _schema_of(child) if isinstance(child, DictConfig) else None
        if child_schema is not None:
            rows += _rows(child, full, child_schema, None)
        else:
            rows.append((f"{full}={_value_text(child)}", descriptions.get(str(key), "")))
    return rows


def _schema_of(node: Any) -> type | None:
    import dataclasses

    from omegaconf import OmegaConf

    kind = OmegaConf.get_type(node)
    return kind if kind is not None and dataclasses.is_dataclass(kind) else None


def _value_text(node: Any) -> str:
    """A config value as it is written on the command line (interpolations and ``???`` left as they are)."""
    from omegaconf import OmegaConf

    if node._is_missing():
        return "???"
    value = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node._value()
    return _plain(value)


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_plain(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{_plain(item)}" for key, item in value.items()) + "}"
    if isinstance(value, str) and (value == "" or any(ch in value for ch in " ,[]{}'\"=")):
        return repr(value)
    return str(value)
