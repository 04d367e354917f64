"""What a replayed config (a run's saved ``.hydra`` record) may hold: data for the command, never code to run.

A run folder is data that users download and share. Replayed, its config may set the command's own
keys, plain ``${key}`` references, and the few Hydra settings lmtrain itself records: the run's
folder, its job name and its config search path (``file://`` folders only). Everything through
which Hydra or OmegaConf would call or import code is refused: Hydra callbacks, logging handlers
(``()`` factories, ``class``), launchers, sweepers, environment settings, ``_target_`` outside a plug
node, resolvers such as ``${oc.env:...}``, ``pkg://`` search paths, a defaults list. The checks here
work on plain containers (``OmegaConf.to_container(..., resolve=False)``); :mod:`lmtrain.config.replay`
composes the config and calls them before anything is imported or run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError

# Hydra keys a replayed file may set: those lmtrain records for a run (its folder, job name, search path)
RECORDED_HYDRA_KEYS = ("run.dir", "sweep.dir", "sweep.subdir", "job.name", "searchpath")
# Hydra keys that may differ from the command's own Hydra config once composed: where the run goes,
# and Hydra's bookkeeping of this composition (the job name is not among them: it names the log file)
FREE_HYDRA_KEYS = (
    "run.dir",
    "sweep.dir",
    "sweep.subdir",
    "searchpath",
    "job.config_name",
    "job.override_dirname",
    "job.id",
    "job.num",
    "runtime",
    "overrides",
)
# the keys through which Hydra's instantiate calls code; lmtrain reads only a plug's `_target_`
INSTANTIATE_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
SAFE_RESOLVERS = ("now", "hydra")  # read the clock or the Hydra config; every other resolver is refused
_MISSING = object()  # a key one of two compared Hydra nodes lacks
_DATA_NOTE = (
    "A run folder is data, not a program: lmtrain never runs code named in a config it replays, and "
    "nothing was run. Remove it from the file, or type the setting on the command line if you mean it."
)


def refuse(key: str, source: Path, why: str) -> UserError:
    """The error for ``key`` in the replayed file ``source``: ``why`` and what to do."""
    return UserError(f"{key} in {source}: {why} {_DATA_NOTE}")


def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key path, value) under ``node``, a mapping's keys included as the last part of the path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, str(index)))
    else:
        yield path, node


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + ".") for prefix in prefixes)


def resolvers_in(text: str) -> list[str]:
    """The resolvers an OmegaConf value calls (``${oc.env:HOME}`` -> ``["oc.env"]``).

    Raises:
        ValueError: ``text`` is no valid OmegaConf value.
    """
    if "${" not in text:
        return []
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
    from omegaconf.grammar_parser import parse

    try:
        tree = parse(text)
    except Exception as error:  # OmegaConf's GrammarParseError and the lexer's own
        raise ValueError(str(error)) from None
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            found.append(node.resolverName().getText())
        stack.extend(node.getChildren() if hasattr(node, "getChildren") else [])
    return found


def check_value(key: str, value: Any, source: Path) -> None:
    """Refuse a value that calls a resolver other than ``now`` / ``hydra`` (or cannot be parsed)."""
    if not isinstance(value, str):
        return
    try:
        unsafe = [name for name in resolvers_in(value) if name not in SAFE_RESOLVERS]
    except ValueError as error:
        raise refuse(key, source, f"{value!r} is no valid value ({error}).") from None
    if unsafe:
        raise refuse(
            key,
            source,
            f"{value!r} calls the resolver `{unsafe[0]}`; a replayed value may hold plain "
            "`${key}` references and `${now:...}` only.",
        )


def check_search_path(key: str, value: Any, source: Path) -> None:
    """A replayed ``hydra.searchpath``: a list of ``file://`` folders (a ``pkg://`` entry imports its package)."""
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if not isinstance(entry, str) or not entry.startswith("file://") or "${" in entry:
            raise refuse(
                key,
                source,
                f"the search path entry {entry!r} is not a `file://` folder; any other kind "
                "(`pkg://` imports a Python package) is refused.",
            )


def check_recorded_hydra(hydra: Any, source: Path) -> None:
    """Refuse every key of a replayed file's ``hydra`` node but those lmtrain records (RECORDED_HYDRA_KEYS)."""
    for path, value in leaves(hydra):
        key = "hydra." + ".".join(path)
        if not _under(".".join(path), RECORDED_HYDRA_KEYS):
            raise refuse(
                key,
                source,
                "a replayed config may set only the run's folder, job name and config search "
                "path among Hydra's settings; the others (callbacks, logging handlers, "
                "launcher, sweeper, environment) could run code.",
            )
        if path[0] == "searchpath":
            check_search_path(key, value, source)
        check_value(key, value, source)


def check_hydra_against(replayed: dict, reference: dict, source: Path) -> None:
    """Refuse a composed Hydra setting that differs from the command's own (``reference``) outside FREE_HYDRA_KEYS.

    Both are the ``hydra`` nodes as plain containers; the reference is lmtrain's own Hydra config with
    the Hydra overrides the user typed, so only what the replayed file brought can differ.
    """
    ours = dict(leaves(reference))
    theirs = dict(leaves(replayed))
    for path in sorted(set(ours) | set(theirs)):
        dotted = ".".join(path)
        if _under(dotted, FREE_HYDRA_KEYS):
            if path in theirs and _under(dotted, RECORDED_HYDRA_KEYS):  # values from the file, resolved later
                check_value("hydra." + dotted, theirs[path], source)
        elif ours.get(path, _MISSING) != theirs.get(path, _MISSING):
            raise refuse(
                "hydra." + dotted,
                source,
                "this Hydra setting differs from lmtrain's own; among Hydra's settings a replayed config "
                "may change only the run's folder and the config search path (callbacks, logging "
                "handlers, launcher, sweeper and environment could run code).",
            )


def check_task_config(task: dict, source: Path, plug_groups: tuple[str, ...]) -> None:
    """Refuse instantiate keys outside a plug's ``_target_`` and unsafe resolvers anywhere in the task config."""
    for path, value in leaves(task):
        key = ".".join(path)
        if any(part in INSTANTIATE_KEYS for part in path) and not (
            len(path) == 2 and path[0] in plug_groups and path[1] == "_target_"
        ):
            raise refuse(
                key,
                source,
                "Hydra's instantiate keys (`_target_`, `_args_`, ...) name code to call; "
                f"lmtrain reads only a plug's own class ({', '.join(g + '._target_' for g in plug_groups)}).",
            )
        check_value(key, value, source)


def check_plug_targets(task: dict, trusted: dict[str, set[str]], source: Path, original: Path | None) -> None:
    """Refuse a plug ``_target_`` that is neither lmtrain's own, nor the run's original one, nor typed by the user.

    Args:
        task: the composed task config (plain containers).
        trusted: group -> the targets accepted besides lmtrain's own (the original record's and the typed ones).
        original: the run's original ``.hydra/config.yaml``, for the message.
    """
    from lmtrain.plugs import check_target

    for group, allowed in trusted.items():
        node = task.get(group)
        target = node.get("_target_") if isinstance(node, dict) else None
        if target is None:
            continue
        key = f"{group}._target_"
        if isinstance(target, str) and "${" in target:
            raise refuse(key, source, f"{target!r} is an interpolation; a plug's class is named literally.")
        try:
            check_target(target, key)
        except UserError as error:
            raise UserError(f"{source}: {error}") from None
        if not target.startswith("lmtrain.") and target not in allowed:
            was = ", ".join(sorted(allowed)) or "no plug of its own"
            raise refuse(
                f"{key}={target}",
                source,
                f"this is not the plug the run was trained with ({original} "
                f"names {was}), so its module is not imported.",
            )


def recorded_targets(config_file: Path | None, plug_groups: tuple[str, ...]) -> dict[str, set[str]]:
    """group -> {the plug ``_target_`` the run's config file names} (empty sets when it names none or is unreadable)."""
    import yaml

    found: dict[str, set[str]] = {group: set() for group in plug_groups}
    try:
        saved = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        saved = None
    for group in plug_groups:
        node = saved.get(group) if isinstance(saved, dict) else None
        target = node.get("_target_") if isinstance(node, dict) else None
        if isinstance(target, str):
            found[group].add(target)
    return found
