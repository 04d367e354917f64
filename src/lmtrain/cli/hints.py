"""What a refused command line is told besides Hydra's own words: the Hydra form of ``--key value``
options, and the closest option or key of a typo (``model=bret`` -> ``model=bert``).

Both read the command's composed config (through a ``compose(overrides, with_hydra)`` callable that
:mod:`lmtrain.cli.main` hands in), so a user's own groups and keys are suggested like lmtrain's.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from typing import Any

from lmtrain.cli.args import DashedOption, dashed_options, overrides_only
from lmtrain.errors import UserError

Compose = Callable[[list[str], bool], Any]  # (overrides, with the hydra node) -> the composed config

# groups lmtrain composes internally (or Hydra's own): never a user's choice
_INTERNAL_GROUPS = ("debug_model", "schema", "hydra")


def config_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of the config ``node`` (its nodes and its leaves), the ``hydra`` node left out."""
    from omegaconf import DictConfig

    keys = []
    for key in node.keys() if isinstance(node, DictConfig) else ():
        if not prefix and key == "hydra":
            continue
        full = prefix + str(key)
        keys.append(full)
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            keys.extend(config_keys(child, f"{full}."))
    return keys


def user_groups(cfg: Any) -> list[str]:
    """The config groups a user chooses among in ``cfg`` (composed with its ``hydra`` node)."""
    choices = cfg.hydra.runtime.choices if "hydra" in cfg else {}
    return sorted(group for group in choices if "/" not in group and group not in _INTERNAL_GROUPS)


def closest(word: str, candidates: list[str]) -> str | None:
    """The candidate most like ``word`` (difflib's ratio of at least 0.6), or None."""
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def _hydra_forms(option: DashedOption, keys: list[str], groups: list[str]) -> list[str]:
    """The overrides ``option`` may mean: its group choice, its full key, or every key ending in its name."""
    if option.name in groups:
        return [f"{option.name}={option.value}"]
    if option.name in keys:
        return [f"{option.name}={option.value}"]
    leaf = [key for key in keys if key.rsplit(".", 1)[-1] == option.name]
    return [f"{key}={option.value}" for key in leaf]


def dashed_option_error(command: str, args: list[str], compose: Compose) -> UserError | None:
    """The one-paragraph error of ``--key value`` options in ``args``, or None when there are none.

    Each option is shown as the Hydra override it stands for (a bare leaf such as ``--max_steps`` is
    found under its node: ``trainer.max_steps``); when every option has one, the whole command line
    is shown rewritten.
    """
    dashed = dashed_options(args)
    if not dashed:
        return None
    rest = [a for i, a in enumerate(args) if not any(start <= i < end for start, end, _ in dashed)]
    try:
        cfg = compose(overrides_only(rest), True)
    except UserError:  # other mistakes too: find the keys in the command's own config
        cfg = compose([], True)
    keys, groups = config_keys(cfg), user_groups(cfg)
    said: list[str] = []
    rewritten, resolved = list(args), True
    for start, end, option in reversed(dashed):  # from the end, so that earlier indices stay valid
        forms = _hydra_forms(option, keys, groups)
        resolved &= len(forms) == 1
        if len(forms) == 1:
            said.insert(0, f"`{option.typed}` is `{forms[0]}`")
            rewritten[start:end] = [forms[0]]
        elif forms:
            said.insert(0, f"`{option.typed}` may be any of {', '.join(forms)}: pick one")
        else:
            near = closest(option.name, sorted({k.rsplit(".", 1)[-1] for k in keys} | set(groups)))
            said.insert(
                0,
                f"`{option.typed}`: there is no key named {option.name}" + (f" (did you mean {near}?)" if near else ""),
            )
    run = f" Run `lmtrain {command} {' '.join(shlex.quote(a) for a in rewritten)}`." if resolved else ""
    return UserError(
        f"lmtrain takes settings as Hydra overrides, key=value without dashes, not --options: "
        f"{'; '.join(said)}.{run} `lmtrain {command} --help` lists the config groups and every key."
    )


def _option_hint(message: str) -> str:
    """``Did you mean model=bert?`` for Hydra's "Could not find 'model/bret'" (with its available options)."""
    found = re.search(r"Could not find '([\w/]+)/([^']+)'", message)
    options = re.search(r"Available options in '[^']+':(.*?)(?:Config search path|$)", message, re.S)
    if not (found and options):
        return ""
    near = closest(found.group(2), options.group(1).split())
    return f"Did you mean {found.group(1)}={near}?" if near else ""


def _key_hint(message: str, overrides: list[str], compose: Compose) -> str:
    """``Did you mean trainer.max_steps?`` for Hydra's "Could not override 'trainer.max_step'"."""
    found = re.search(r"Could not override '([^']+)'", message)
    if not found:
        return ""
    key = found.group(1)
    others = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key]
    try:
        cfg = compose(others, True)
    except UserError:
        return ""
    if "No match in the defaults list" in message:  # `debug=tiny` where the command has no debug group
        groups = user_groups(cfg)
        near = closest(key, groups)
        return (
            f"Did you mean {near}=...?"
            if near
            else f"This command has no config group {key}; its groups: {', '.join(groups)}."
        )
    keys, parts = config_keys(cfg), key.split(".")
    for depth in range(len(parts)):
        parent = ".".join(parts[:depth])
        siblings = [
            k.rsplit(".", 1)[-1] for k in keys if k.count(".") == depth and (not parent or k.startswith(f"{parent}."))
        ]
        if parts[depth] not in siblings:
            near = closest(parts[depth], siblings)
            return f"Did you mean {'.'.join([*parts[:depth], near, *parts[depth + 1 :]])}?" if near else ""
    return ""


def typo_hint(message: str, overrides: list[str], compose: Compose) -> str:
    """The closest option or key to the one Hydra could not find (``message`` is its error), or ''."""
    return _option_hint(message) or _key_hint(message, overrides, compose)
