"""Check a replayed config before Hydra runs it: ``lmtrain resume`` and ``--config-dir <run>/.hydra
--config-name config``.

``lmtrain resume RUN`` replays the run's ``overrides.yaml``; a ``--config-name`` (or ``--config-path``)
naming a config outside lmtrain's own makes that file, usually a run's saved ``config.yaml``, the
primary config. Both come from a run folder, which is data users download and share. Here the
replayed file is read as Hydra would read it, then composed exactly as Hydra will compose it (same
search path, same overrides, same run mode), and the result is checked with
:mod:`lmtrain.config.replay_rules`: its Hydra settings must be lmtrain's own (what the user typed
aside), its task config the command's schema with no code to call, its plugs those the run was
trained with. Nothing is imported or run before these checks pass; a refusal is a UserError naming
the key and the file. ``--experimental-rerun`` (which unpickles a saved config) is refused outright.
"""

from __future__ import annotations

import warnings
from argparse import Namespace
from pathlib import Path
from typing import Any, NoReturn

from lmtrain.config import SCHEMAS
from lmtrain.config.plug_nodes import PLUG_GROUPS
from lmtrain.config.replay_rules import (
    check_hydra_against,
    check_plug_targets,
    check_recorded_hydra,
    check_search_path,
    check_task_config,
    recorded_targets,
    refuse,
)
from lmtrain.errors import UserError

_RECORDED_OVERRIDES = ("hydra.run.dir", "hydra.job.name", "hydra.searchpath")  # the Hydra keys a saved list may set


def hydra_arguments(args: list[str]) -> Namespace | None:
    """``args`` read by Hydra's own argument parser (None when it would refuse them: Hydra then says why)."""
    from hydra._internal.utils import get_args_parser

    class _Unparsed(Exception):
        pass

    def fail(message: str) -> NoReturn:
        raise _Unparsed(message)

    parser = get_args_parser()
    parser.error = fail  # type: ignore[method-assign]  # no exit and no message here: Hydra reports it later
    try:
        return parser.parse_args(args)
    except _Unparsed:
        return None


def names_primary_config(args: list[str]) -> bool:
    """Whether ``args`` choose the primary config (``--config-name`` / ``--config-path``, in any spelling Hydra
    takes)."""
    parsed = hydra_arguments(args)
    return parsed is not None and (parsed.config_name is not None or parsed.config_path is not None)


def _search_path(command: str, parsed: Namespace, shipped: Path) -> Any:
    """The config search path Hydra builds for ``lmtrain <command>`` with these flags (see
    ``hydra._internal.utils``)."""
    import os

    from hydra._internal.utils import compute_search_path_dir, create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    # lmtrain's task function carries the module name lmtrain.commands.<command>: a relative --config-path
    # is resolved against that package, as Hydra does
    main = compute_search_path_dir(None, f"lmtrain.commands.{command}", parsed.config_path or str(shipped))
    search_path = create_config_search_path(main)
    if parsed.config_dir is not None:
        folder = os.path.abspath(parsed.config_dir)
        if not os.path.isdir(folder):
            raise UserError(f"--config-dir {parsed.config_dir}: no such folder.")
        search_path.prepend(provider="command-line", path=f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
    return search_path


def _compose(
    command: str, search_path: Any, config_name: str, overrides: list[str], multirun: bool, source: Path
) -> Any:
    """The config Hydra will compose, its ``hydra`` node included (nothing is instantiated or resolved)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.types import RunMode

    from lmtrain.config import register_configs

    register_configs()
    try:
        with warnings.catch_warnings():  # Hydra warns of a missing search path folder itself when it composes
            warnings.simplefilter("ignore")
            return ConfigLoaderImpl(search_path).load_configuration(
                config_name=config_name, overrides=overrides, run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN
            )
    except Exception as error:  # Hydra's and OmegaConf's composition errors: their first lines say what is wrong
        causes = [error, error.__cause__ or error.__context__]
        detail = ": ".join(
            str(e).strip().splitlines()[0].rstrip(".") for e in causes if e is not None and str(e).strip()
        )
        raise UserError(
            f"invalid configuration for `lmtrain {command}` (replaying {source}): {detail}. Run "
            f"`lmtrain {command} --help` to list the config groups, their options and keys."
        ) from None


def _typed_overrides(overrides: list[str]) -> tuple[list[str], dict[str, set[str]]]:
    """The Hydra overrides among those the user typed, and the plug targets they name (group -> targets)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    # parse_overrides keeps every override's input line
    hydra = [o.input_line for o in parsed if o.is_hydra_override() and o.input_line is not None]
    targets: dict[str, set[str]] = {group: set() for group in PLUG_GROUPS}
    for override in parsed:
        group, _, leaf = override.key_or_group.partition(".")
        value = override.value()
        if group in targets and leaf == "_target_" and isinstance(value, str):
            targets[group].add(value)
    return hydra, targets


def _plain(node: Any) -> dict[Any, Any]:
    """``node`` (a DictConfig) as plain dicts and lists, interpolations and missing values kept as written."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
    if not isinstance(plain, dict):
        raise TypeError(f"{type(node).__name__} is not a mapping config")
    return plain


def _check_composed(
    command: str, parsed: Namespace, search_path: Any, typed: list[str], source: Path, original: Path | None
) -> None:
    """Compose ``parsed``'s config and lmtrain's own with only the typed Hydra overrides; check the difference."""
    from omegaconf import OmegaConf

    config_name = parsed.config_name or command
    replayed = _compose(command, search_path, config_name, parsed.overrides, parsed.multirun, source)
    typed_hydra, typed_targets = _typed_overrides(typed)
    reference = _compose(command, search_path, command, typed_hydra, parsed.multirun, source)
    plain = _plain(replayed)
    hydra = plain.pop("hydra")
    check_task_config(plain, source, PLUG_GROUPS)
    check_hydra_against(hydra, _plain(reference.hydra), source)
    trusted = recorded_targets(original, PLUG_GROUPS)
    check_plug_targets(plain, {g: trusted[g] | typed_targets[g] for g in PLUG_GROUPS}, source, original)
    fit_schema(OmegaConf.create(plain), command, source)


def fit_schema(cfg: Any, command: str, source: Path | str = "this config") -> Any:
    """``cfg`` merged into ``command``'s schema when it was composed without one (a saved config as primary).

    Raises:
        UserError: a key the schema does not have, or a value of the wrong type.
    """
    from omegaconf import OmegaConf

    if command not in SCHEMAS or OmegaConf.get_type(cfg) is not dict:
        return cfg
    try:
        return OmegaConf.merge(OmegaConf.structured(SCHEMAS[command]), cfg)
    except Exception as error:  # OmegaConf's validation errors: a key or type the schema refuses
        key = getattr(error, "full_key", None)
        text = " ".join(str(getattr(error, "msg", error)).split())
        raise UserError(
            f"{source} does not fit `lmtrain {command}`: {f'{key}: ' if key else ''}{text}. A run's saved "
            f"config is used with `lmtrain {command} --config-dir <run>/.hydra --config-name config`; "
            "fix or drop the key."
        ) from None


def _original_record(primary: Path) -> Path:
    """The run's original ``.hydra/config.yaml`` for a saved config (``.hydra/resume-<n>/config.yaml``'s parent's)."""
    parent = primary.parent
    if parent.name.startswith("resume-") and (parent.parent / "config.yaml").is_file():
        return parent.parent / "config.yaml"
    return primary


def check_config_rerun(command: str, args: list[str], shipped: Path) -> None:
    """Refuse a primary config from outside lmtrain (``--config-name``) that would run code, and
    ``--experimental-rerun``.

    Args:
        args: Hydra's command line (flags and overrides, lmtrain's own settings for a re-run included).
        shipped: lmtrain's own config folder.
    Raises:
        UserError: naming the key and the file.
    """
    parsed = hydra_arguments(args)
    if parsed is None:
        return
    if parsed.experimental_rerun is not None:
        raise UserError(
            f"--experimental-rerun {parsed.experimental_rerun}: that loads a pickled config, and lmtrain "
            "never unpickles a file (it can run any code). Re-run a saved config with "
            f"`lmtrain {command} --config-dir <run>/.hydra --config-name config`."
        )
    if parsed.config_name is None and parsed.config_path is None:
        return
    search_path = _search_path(command, parsed, shipped)
    replayed = _replayed_primary(search_path, parsed.config_name or command, shipped)
    if replayed is None:
        return
    primary, loaded = replayed
    _check_primary(primary, loaded)
    _check_composed(command, parsed, search_path, parsed.overrides, primary, _original_record(primary))


def _replayed_primary(search_path: Any, config_name: str, shipped: Path) -> tuple[Path, Any] | None:
    """The file Hydra reads as the primary config and what it holds (Hydra's ConfigResult), or None when it is
    lmtrain's own config (or there is none: Hydra then says so)."""
    from hydra._internal.config_repository import ConfigRepository

    try:
        found = ConfigRepository(search_path).load_config(config_path=config_name)
    except Exception as error:  # the file is no YAML mapping, or its defaults list is malformed
        raise UserError(
            f"--config-name {config_name}: the config cannot be read ({' '.join(str(error).split())})."
        ) from None
    if found is None or found.path in (f"file://{shipped}", "structured://"):
        return None
    return Path(found.path.split("://", 1)[-1]) / f"{config_name}.yaml", found


def _check_primary(primary: Path, loaded: Any) -> None:
    """The raw primary file: what acts while Hydra composes it (a defaults list, the search path) and its Hydra keys."""
    from omegaconf import OmegaConf

    if loaded.defaults_list:
        raise refuse(
            "defaults",
            primary,
            "a saved config holds its composed values, never a defaults list (which "
            "would load other config files, Hydra's logging and launcher ones included).",
        )
    raw = _plain(loaded.config) if OmegaConf.is_dict(loaded.config) else {}
    if "hydra" in raw:
        check_recorded_hydra(raw["hydra"], primary)


def check_resumed_overrides(
    command: str, saved: list[str], typed: list[str], source: Path, original: Path, shipped: Path
) -> None:
    """Refuse saved overrides (a run's ``overrides.yaml``) that would run code when ``lmtrain resume`` replays them.

    Args:
        saved: the overrides read from ``source``.
        typed: the overrides given on the command line (and the run directory and ``trainer.resume`` resume adds).
        original: the run's original ``.hydra/config.yaml``: its plug targets are the ones accepted.
        shipped: lmtrain's own config folder.
    Raises:
        UserError: naming the override and the file.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for line in saved:
        try:
            override = parser.parse_override(line)
        except Exception as error:  # Hydra's OverrideParseException and the grammar's errors
            raise refuse(
                repr(line), source, f"this is not an override lmtrain wrote ({' '.join(str(error).split())})."
            ) from None
        if not override.is_hydra_override():
            continue
        key = override.key_or_group
        if key not in _RECORDED_OVERRIDES:
            raise refuse(
                line,
                source,
                "a saved override may set only the run's folder, job name and config search "
                "path among Hydra's settings; the others (callbacks, logging handlers, "
                "launcher, sweeper, environment) could run code.",
            )
        if key == "hydra.searchpath":
            check_search_path(line, override.value(), source)
    parsed = hydra_arguments([*saved, *typed])
    if parsed is None:
        return
    _check_composed(command, parsed, _search_path(command, parsed, shipped), typed, source, original)
