"""Shell completion for ``lmtrain <command> ...`` in bash, zsh and fish.

Hydra completes the overrides of one app whose name is the program's; lmtrain is one program
with commands, so Hydra's own script would complete a program ``lmtrain-<command>`` that does
not exist, and its query would read the command as an override. Here the shell script (from
``lmtrain completion bash|zsh|fish``) asks ``lmtrain completion query <shell>`` with the line
typed so far (``COMP_LINE``, ``COMP_POINT``): the command word is completed from lmtrain's own
list; after a Hydra command, the line without the command goes to Hydra's query, which knows
the config groups, their options and every key; after ``runs``, ``plot`` or ``resume``, paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

SHELLS = ("bash", "zsh", "fish")
QUERY = "completion query"

_BASH = """# lmtrain completion for bash: eval "$(lmtrain completion bash)" (e.g. in ~/.bashrc)
_lmtrain_completion()
{
    local word=${COMP_WORDS[COMP_CWORD]}
    local choices
    choices=$(COMP_LINE="$COMP_LINE" COMP_POINT="$COMP_POINT" lmtrain %(query)s %(shell)s 2>/dev/null)
    COMPREPLY=($(compgen -o nospace -o default -W "$choices" -- "$word"))
}
# as Hydra's own script does: keep key=value one word
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _lmtrain_completion lmtrain
"""

_ZSH_PREFIX = """# lmtrain completion for zsh: eval "$(lmtrain completion zsh)" (e.g. in ~/.zshrc), through bashcompinit
autoload -Uz compinit bashcompinit
(( $+functions[compdef] )) || compinit
bashcompinit
"""

_FISH = """# lmtrain completion for fish: lmtrain completion fish | source (e.g. in ~/.config/fish/config.fish)
function __lmtrain_completion
    set -lx COMP_LINE (commandline -cp)
    lmtrain %(query)s fish 2>/dev/null
end
complete -c lmtrain -f -a '(__lmtrain_completion)'
"""

NATIVE_OPTIONS = {
    "runs": ["--json", "--running-window"],
    "plot": ["metrics=", "out=", "x=step", "x=tokens", "x=time", "svg=true", "smooth="],
    "resume": [],
}


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish), to ``eval`` or ``source``."""
    values = {"query": QUERY, "shell": shell}
    if shell == "bash":
        return _BASH % values
    if shell == "zsh":
        return _ZSH_PREFIX + _BASH % values
    if shell == "fish":
        return _FISH % values
    raise ValueError(f"no completion for shell {shell!r}; one of {', '.join(SHELLS)}")


def typed_line() -> str:
    """The command line typed up to the cursor (``COMP_LINE`` cut at ``COMP_POINT``)."""
    line = os.environ.get("COMP_LINE", "")
    point = os.environ.get("COMP_POINT", "")
    return line[: int(point)] if point.isdigit() and int(point) <= len(line) else line


def split_line(line: str) -> tuple[list[str], str]:
    """The finished words of ``line`` and the word being typed ('' right after a space)."""
    words = line.split()
    if not words or line[-1:].isspace():
        return words, ""
    return words[:-1], words[-1]


def complete_paths(word: str) -> list[str]:
    """Files and folders starting with ``word`` (folders with a trailing ``/``)."""
    folder, prefix = os.path.split(word)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith(prefix) and (prefix.startswith(".") or not name.startswith(".")):
            path = os.path.join(folder, name)
            found.append(path + "/" if os.path.isdir(path) else path)
    return found


def strip_command(line: str) -> str:
    """``lmtrain pretrain model=b`` as Hydra's query expects it: ``lmtrain model=b``.

    Hydra drops the first word (the program) and reads the rest as overrides.
    """
    program, _, rest = line.lstrip().partition(" ")
    _command, _, overrides = rest.lstrip().partition(" ")
    return f"{program} {overrides}"


def query(
    shell: str,
    commands: Sequence[str],
    hydra_commands: Sequence[str],
    hydra_query: Callable[[str, str], None],
    out: TextIO | None = None,
) -> None:
    """Print the completions of the typed line (``COMP_LINE``) for ``shell``.

    Args:
        shell: bash | zsh (candidates space separated) or fish (one per line).
        commands: every command name.
        hydra_commands: the commands whose arguments Hydra completes.
        hydra_query: ``(command, shell)`` -> prints Hydra's completions of ``COMP_LINE``.
        out: where to print (default: standard output).
    """
    out = out or sys.stdout
    line = typed_line()
    words, word = split_line(line)
    if len(words) <= 1:  # the command itself
        choices = [c for c in commands if c.startswith(word)]
    elif words[1] in hydra_commands:
        os.environ["COMP_LINE"] = strip_command(line)
        os.environ.pop("COMP_POINT", None)  # Hydra ignores it; the line above is already cut there
        hydra_query(words[1], shell)
        return
    elif words[1] == "completion":
        choices = [s for s in SHELLS if s.startswith(word)] if len(words) == 2 else []
    else:
        options = NATIVE_OPTIONS.get(words[1], [])
        choices = [o for o in options if o.startswith(word)] + complete_paths(word)
    out.write(("\n" if shell == "fish" else " ").join(choices) + "\n")


def hydra_completion_request(args: Sequence[str]) -> tuple[str, str] | None:
    """``("install" | "uninstall" | "query", shell)`` if ``args`` hold Hydra's ``-sc <action>=<shell>``."""
    for flag, value in zip(args, [*args[1:], ""]):
        if flag in ("-sc", "--shell-completion"):
            action, _, shell = value.partition("=")
            if action in ("install", "uninstall", "query"):
                return action, shell or "bash"
    return None


def uninstall(shell: str) -> str:
    """Commands that remove lmtrain's completion from ``shell``."""
    if shell == "fish":
        return "complete -e -c lmtrain\nfunctions -e __lmtrain_completion\n"
    return "complete -r lmtrain 2>/dev/null\nunset -f _lmtrain_completion\n"


def main(
    args: Sequence[str], commands: Sequence[str], hydra_commands: Sequence[str], hydra_query: Callable[[str, str], None]
) -> None:
    """``lmtrain completion bash|zsh|fish`` (print the script) or ``lmtrain completion query <shell>``.

    Raises:
        UserError: for another shell or action, saying what exists.
    """
    from lmtrain.errors import UserError

    if len(args) == 1 and args[0] in SHELLS:
        sys.stdout.write(script(args[0]))
        return
    if len(args) == 2 and args[0] == "query" and args[1] in SHELLS:
        query(args[1], commands, hydra_commands, hydra_query)
        return
    raise UserError(
        f"`lmtrain completion {' '.join(args)}`: give one shell, {', '.join(SHELLS)}, e.g. "
        '`eval "$(lmtrain completion bash)"` in ~/.bashrc, or `lmtrain completion fish | source`.'
    )
