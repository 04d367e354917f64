"""Command-line arguments as Hydra should read them: free text kept literal, overrides without flags."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmtrain.shell_words import hydra_quote

# Hydra flags followed by a value
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
# every flag Hydra's own parser takes; any other `-x` / `--x` is a habit from other tools (see dashed_options)
HYDRA_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--cfg",
    "-c",
    "--resolve",
    "--package",
    "-p",
    "--run",
    "-r",
    "--multirun",
    "-m",
    "--shell-completion",
    "-sc",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--info",
    "-i",
}
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", re.IGNORECASE)


@dataclass
class DashedOption:
    """A ``--key value`` / ``--key=value`` / ``--flag`` argument, as other tools take settings.

    Attributes:
        typed: the argument(s) as typed (``--max_steps 5``).
        name: the key without dashes, ``-`` read as ``_`` (``max_steps``).
        value: the value (``"true"`` for a bare flag).
    """

    typed: str
    name: str
    value: str


def dashed_options(args: list[str]) -> list[tuple[int, int, DashedOption]]:
    """The arguments of ``args`` that are not Hydra flags but look like ``--key value`` options.

    Returns:
        (first index, index after the option's value, option) of each, in order.
    """
    found = []
    index = 0
    while index < len(args):
        arg = args[index]
        flag = arg.split("=", 1)[0]
        if not arg.strip("-") or not arg.startswith("-") or _NUMBER.fullmatch(arg) or flag in HYDRA_FLAGS:
            index += 2 if arg in _FLAGS_WITH_VALUE else 1
            continue
        name, _, value = arg.lstrip("-").partition("=")
        end = index + 1
        if "=" not in arg:
            following = args[index + 1] if index + 1 < len(args) else None
            if (
                following is not None
                and "=" not in following
                and (not following.startswith("-") or _NUMBER.fullmatch(following))
            ):
                value, end = following, index + 2
            else:
                value = "true"
        found.append((index, end, DashedOption(" ".join(args[index:end]), name.replace("-", "_"), value)))
        index = end
    return found


# free-text keys: their values are quoted for Hydra, so `prompt=The [MASK], it's hot!` just works
_FREE_TEXT_KEYS = ("prompt=", "+prompt=")


def _escape_interpolations(text: str) -> str:
    """``text`` as an OmegaConf string that resolves to ``text`` itself: every ``${`` escaped.

    OmegaConf reads ``\\${`` as a literal ``${`` and halves a run of backslashes only where it
    stands before ``${``; backslashes anywhere else are kept as they are.
    """
    return re.sub(r"(\\*)\$\{", lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", text)


def _unquote(key: str, value: str) -> str:
    """The text of a value the user already quoted for Hydra (as Hydra reads it), else the value itself."""
    if not (len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""):
        return value
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(key + value).value()
    except Exception:  # not one quoted string after all (e.g. 'a' 'b'): the characters are the text
        return value
    return parsed if isinstance(parsed, str) else value


def quote_free_text(args: list[str]) -> list[str]:
    """Quote the values of free-text overrides (``prompt=``) so they reach the config literally.

    Neither Hydra's override grammar (brackets, commas, quotes, backslashes) nor OmegaConf's
    interpolation (``${...}``) acts on the text: the override is a quoted Hydra string holding
    the text with every ``${`` escaped, so `--cfg job`, the saved config and overrides show the
    text unresolved and the command reads it exactly as typed. A value already wrapped in quotes
    is unquoted once, as Hydra would.
    """
    quoted = []
    for arg in args:
        key = next((k for k in _FREE_TEXT_KEYS if arg.startswith(k)), None)
        value = arg[len(key) :] if key else ""
        if key and value:
            arg = key + hydra_quote(_escape_interpolations(_unquote(key, value)))
        quoted.append(arg)
    return quoted


def overrides_only(args: list[str]) -> list[str]:
    """Strip Hydra flags (and their values) from ``args``, keeping the key=value overrides."""
    overrides: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg in _FLAGS_WITH_VALUE:
            skip_next = True
            continue
        if arg.startswith("-"):
            continue
        if arg.startswith(("hydra.", "hydra/", "+hydra")) and not arg.startswith("hydra.searchpath="):
            continue  # the search path stays: users' own config groups (their plugs' YAML) live there
        overrides.append(arg)
    return overrides
