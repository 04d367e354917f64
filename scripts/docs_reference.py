"""The Reference pages of the docs site, generated from lmtrain's own schemas and presets.

Every command, every config key (type, default, description) and every preset is read from the code
at build time, so the pages cannot drift from the tool:

- as an mkdocs hook (``hooks:`` in mkdocs.yml): ``on_files`` adds the pages to the site on every
  ``mkdocs build`` / ``mkdocs serve``; nothing is written into docs/;
- as a script: ``python scripts/docs_reference.py --out DIR`` writes them to DIR to read or diff.

A key's description is the trailing ``# comment`` of its schema field (lmtrain.config.descriptions),
the same text ``lmtrain <command> --help`` prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

# pages this module makes, relative to docs/ (mkdocs.yml's nav names them)
COMMANDS_PAGE = "reference/commands.md"
SCHEMAS_PAGE = "reference/schemas.md"
PRESETS_PAGE = "reference/presets.md"
# config groups lmtrain composes itself: listed with the presets, never chosen on their own
_INTERNAL_GROUPS = ("debug_model",)


def pages() -> dict[str, str]:
    """``{path under docs/: markdown}`` of every generated Reference page."""
    from lmtrain.config import register_configs

    register_configs()
    return {COMMANDS_PAGE: commands_page(), SCHEMAS_PAGE: schemas_page(), PRESETS_PAGE: presets_page()}


# ---------------------------------------------------------------- commands


def commands_page() -> str:
    """Every command: its description, config groups with their options, and every key of its default config."""
    from lmtrain.cli.main import COMMANDS, NATIVE_COMMANDS, _descriptions

    described = _descriptions()
    lines = [
        "# Commands",
        "",
        _GENERATED,
        "",
        "| command | what it does |",
        "|---|---|",
        *[f"| [`{name}`](#{name}) | {_cell(text)} |" for name, text in described.items()],
        "",
    ]
    for command in COMMANDS:
        lines += _hydra_command_section(command, described[command])
    for command, (text, _module) in NATIVE_COMMANDS.items():
        lines += [
            f"## {command}",
            "",
            _cell(text),
            "",
            f"`lmtrain {command} --help` lists its arguments; it reads run folders and composes no config.",
            "",
        ]
    lines += [
        "## resume",
        "",
        described["resume"],
        "",
        "The run's own saved command and overrides, with the `key=value` changes given; see "
        "[Resume and extend a run](../how-to/resume.md).",
        "",
    ]
    return "\n".join(lines)


def _hydra_command_section(command: str, description: str) -> list[str]:
    from lmtrain.cli.help import config_sources, group_options
    from lmtrain.cli.main import compose_command
    from lmtrain.config import SCHEMAS

    cfg = compose_command(command, [], with_hydra=True)
    sources = config_sources(cfg)
    choices = {
        group: option
        for group, option in cfg.hydra.runtime.choices.items()
        if not group.startswith(("hydra", "schema", *_INTERNAL_GROUPS))
        and "@" not in group
        and group_options(group, sources)
    }
    lines = [
        f"## {command}",
        "",
        description,
        "",
        f"```bash\nlmtrain {command} [group=option ...] [key=value ...] [-m] [--cfg job] [--help]\n```",
        "",
    ]
    if choices:
        lines += ["**Config groups** (`group=option`; the default in bold):", "", "| group | options |", "|---|---|"]
        for group in sorted(choices):
            options = []
            for option in group_options(group, sources):
                name = f"**{option}**" if option == choices[group] else option
                options.append(f"[{name}](presets.md#{group}-{option})")
            lines.append(f"| `{group}` | {', '.join(options)} |")
        lines.append("")
    lines += ["**Keys** of the default config, each with its default (the default presets' values):", ""]
    lines += _config_tables(cfg, SCHEMAS[command])
    return lines


def _config_tables(cfg: Any, schema: type) -> list[str]:
    """A table of the top-level keys, then one per config node, of the composed ``cfg``."""
    from omegaconf import DictConfig

    from lmtrain.config.descriptions import field_descriptions, schema_summary

    loose = [str(key) for key in cfg if key != "hydra" and not isinstance(cfg._get_node(key), DictConfig)]
    lines = []
    if loose:
        lines += _table([_row(cfg, key, key, schema) for key in loose])
    top = field_descriptions(schema)
    for key in cfg:
        node = cfg._get_node(key)
        if key == "hydra" or not isinstance(node, DictConfig):
            continue
        node_schema = _schema_of(node)
        about = schema_summary(node_schema) if node_schema else top.get(str(key), "")
        named = f"[`{node_schema.__name__}`](schemas.md#{node_schema.__name__.lower()}): " if node_schema else ""
        lines += [f"`{key}` ({named}{_cell(about)})", ""]
        lines += _table(_node_rows(node, str(key), node_schema))
    return lines


def _node_rows(node: Any, prefix: str, schema: type | None) -> list[tuple[str, str, str, str]]:
    from omegaconf import DictConfig

    rows = []
    for key in node:
        child = node._get_node(key)
        full = f"{prefix}.{key}"
        child_schema = _schema_of(child) if isinstance(child, DictConfig) else None
        if child_schema is not None:
            rows += _node_rows(child, full, child_schema)
        else:
            rows.append(_row(node, str(key), full, schema))
    return rows


def _row(node: Any, key: str, full: str, schema: type | None) -> tuple[str, str, str, str]:
    from lmtrain.cli.help import _value_text
    from lmtrain.config.descriptions import field_descriptions

    described = field_descriptions(schema) if schema else {}
    kinds = _field_types(schema) if schema else {}
    return full, kinds.get(key, ""), _value_text(node._get_node(key)), described.get(key, "")


def _schema_of(node: Any) -> type | None:
    from omegaconf import OmegaConf

    kind = OmegaConf.get_type(node)
    return kind if kind is not None and dataclasses.is_dataclass(kind) else None


# ---------------------------------------------------------------- schemas


def schemas_page() -> str:
    """Every schema dataclass (command configs, shared groups, plugs): each field's type, default, description."""
    from lmtrain.config import PLUG_SCHEMAS, SCHEMAS
    from lmtrain.config.descriptions import field_descriptions, schema_summary

    lines = [
        "# Config schemas",
        "",
        _GENERATED,
        "",
        "Each config node is typed by one of these dataclasses: a key that is not a field is refused, and a "
        "value of the wrong type or outside its range stops the command before any work. The plug schemas "
        "(model, objective, task, and the data of each) are chosen by the preset: `model=bert` types `model` "
        "with `TransformerConfig`, `model=elmo` with `ElmoConfig`. The defaults here are the schema's own; a "
        "preset may set others ([Presets](presets.md)).",
        "",
    ]
    for title, schemas in _schema_sections(SCHEMAS, PLUG_SCHEMAS):
        lines += [f"## {title}", ""]
        for schema in schemas:
            described = field_descriptions(schema)
            kinds = _field_types(schema)
            lines += [f"### {schema.__name__}", "", _cell(schema_summary(schema)), ""]
            rows = [
                (field.name, kinds.get(field.name, ""), _default_text(field), described.get(field.name, ""))
                for field in dataclasses.fields(schema)
            ]
            lines += _table(rows)
    return "\n".join(lines)


def _schema_sections(commands: dict[str, type], plugs: dict[str, dict[str, type]]) -> list[tuple[str, list[type]]]:
    """The schemas grouped for the page, each once: commands, the groups they share, then each plug group."""
    seen: set[type] = set()

    def once(schemas: list[type]) -> list[type]:
        fresh = [schema for schema in schemas if schema not in seen]
        seen.update(fresh)
        return fresh

    sections = [("Commands", once(list(commands.values())))]
    nested = []
    for schema in commands.values():
        for kind in _field_types(schema, raw=True).values():
            nested += [arg for arg in (kind, *typing.get_args(kind)) if dataclasses.is_dataclass(arg)]
    sections.append(("Shared groups", once(list(dict.fromkeys(nested)))))
    names = {
        "schema/model": "Model families (model=)",
        "schema/objective": "Objectives (objective=)",
        "schema/task": "Tasks (task=)",
        "schema/data": "Data (data=)",
    }
    for group, schemas in plugs.items():
        bases = [base for schema in schemas.values() for base in schema.__mro__[1:] if dataclasses.is_dataclass(base)]
        sections.append((names.get(group, group), once(list(dict.fromkeys([*bases, *schemas.values()])))))
    return [(title, schemas) for title, schemas in sections if schemas]


def _field_types(schema: type, raw: bool = False) -> dict[str, Any]:
    """``{field: type}`` of ``schema``, as text (``raw``: the type objects)."""
    try:
        hints = typing.get_type_hints(schema)
    except Exception:  # a forward reference that cannot be resolved: the annotation's text instead
        hints = {field.name: field.type for field in dataclasses.fields(schema)}
    kinds = {field.name: hints.get(field.name, field.type) for field in dataclasses.fields(schema)}
    return kinds if raw else {name: _type_text(kind) for name, kind in kinds.items()}


def _type_text(kind: Any) -> str:
    if isinstance(kind, str):
        return kind
    if kind is Any:
        return "node"
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return " | ".join(_type_text(arg) for arg in rest) + " | null"
    if args:
        return f"{typing.get_origin(kind).__name__}[{', '.join(_type_text(arg) for arg in args)}]"
    return getattr(kind, "__name__", str(kind))


def _default_text(field: dataclasses.Field) -> str:
    from lmtrain.cli.help import _plain

    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "???"
    if dataclasses.is_dataclass(value):
        return f"[{type(value).__name__}](#{type(value).__name__.lower()})"
    return "???" if value == "???" else _plain(value)


# ---------------------------------------------------------------- presets


def presets_page() -> str:
    """Every preset YAML of every config group: what it is (its first comment), its schema and the values it sets."""
    from lmtrain.cli.main import config_dir

    root = config_dir()
    lines = [
        "# Presets",
        "",
        _GENERATED,
        "",
        "A preset is a YAML file under `src/lmtrain/configs/<group>/`, chosen with `group=option`. "
        "`--config-dir my_configs` (a folder with the same sub-folders) or "
        "`hydra.searchpath=[file://my_configs]` adds your own.",
        "",
    ]
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        group = folder.name
        lines += [f"## {group}", ""]
        if group in _INTERNAL_GROUPS:
            lines += [
                "Composed by lmtrain itself: `debug=tiny` adds `debug_model/tiny_<model>.yaml` for the chosen "
                "model preset.",
                "",
            ]
        for path in sorted(folder.glob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            lines += [f"### {group}: {path.stem}", "", _cell(_first_paragraph(text)), ""]
            lines += _preset_facts(text, "" if "@package _global_" in text else group)
    return "\n".join(lines)


def _first_paragraph(text: str) -> str:
    """The first paragraph of a YAML file's leading comments, without the ``@package`` line and command lines."""
    paragraph: list[str] = []
    for line in text.splitlines():
        body = line.strip()[1:] if line.strip().startswith("#") else None
        if body is not None and "@package" in body and not paragraph:
            continue
        if body is None or body.startswith("  ") or not body.strip():  # code, a command line or a blank comment
            if paragraph:
                break
            continue
        paragraph.append(body.strip())
    return " ".join(paragraph)


def _preset_facts(text: str, prefix: str) -> list[str]:
    """The schema a preset extends, the presets it picks, and the values it sets (keys under ``prefix``)."""
    loaded = yaml.safe_load(text) or {}
    defaults = loaded.pop("defaults", []) if isinstance(loaded, dict) else []
    facts = []
    for entry in defaults:
        if isinstance(entry, str) and entry.startswith("/schema/"):
            facts.append(f"- schema: `{entry.split('@')[0].removeprefix('/')}`")
        elif isinstance(entry, dict):
            facts += [f"- picks `{key.removeprefix('override ').strip('/')}={value}`" for key, value in entry.items()]
    values = [f"`{key}={value}`" for key, value in _flatten(loaded, prefix)]
    if values:
        facts.append("- sets " + ", ".join(values))
    return [*facts, ""] if facts else []


def _flatten(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    from lmtrain.cli.help import _plain

    if not isinstance(node, dict):
        return [(prefix, _plain(node))] if prefix else []
    found = []
    for key, value in node.items():
        found += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return found


# ---------------------------------------------------------------- markdown

_GENERATED = (
    '!!! note "Generated"\n    This page is generated from lmtrain\'s schemas and presets '
    "(`scripts/docs_reference.py`) each time the site is built."
)


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    if not rows:
        return []
    body = [f"| `{key}` | {_code(kind)} | {_code(default)} | {_cell(text)} |" for key, kind, default, text in rows]
    return ["| key | type | default | description |", "|---|---|---|---|", *body, ""]


def _code(text: str) -> str:
    """``text`` as code in a table cell (Python-Markdown's tables keep a ``|`` inside backticks in its cell)."""
    if not text or (text.startswith("[") and "](#" in text):  # empty, or a link to a schema
        return text
    return f"`{text}`"


def _cell(text: str) -> str:
    return _escape(" ".join(str(text).split()))


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


# ---------------------------------------------------------------- mkdocs hook and script


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


def main(argv: list[str] | None = None) -> None:
    """``--out DIR``: write the generated pages under DIR (as they would sit under docs/)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pages into")
    args = parser.parse_args(argv)
    for path, text in pages().items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(target)


if __name__ == "__main__":
    main()
