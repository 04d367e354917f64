"""Command lines that lmtrain prints for a user to run: each word as a shell reads it, each override as
Hydra reads it back, so that a printed command runs as printed (a placeholder only ever in a comment)."""

from __future__ import annotations

import re
import shlex

# a value Hydra reads back as the same string without quotes (no grammar characters, not a number or a keyword)
_PLAIN = re.compile(r"[\w./@+~-]*[A-Za-z_/][\w./@+~-]*")
_KEYWORDS = {"true", "false", "null", "nan", "inf"}


def hydra_quote(text: str) -> str:
    """``text`` as a single-quoted Hydra override value that Hydra parses back to ``text``.

    Inside quotes Hydra unescapes backslashes only before a quote (the inner ones and the closing one).
    """
    body = re.sub(r"(\\*)'", lambda m: "\\" * (2 * len(m.group(1)) + 1) + "'", text)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return f"'{body}'"


def override(key: str, value: object) -> str:
    """``key=value`` as one shell word that reaches Hydra as ``key`` set to ``value``: a number as it is, anything
    else (a path, a name) as its text."""
    text = str(value)
    plain = isinstance(value, (int, float)) or (_PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS)
    return shlex.quote(f"{key}={text if plain else hydra_quote(text)}")


def command(*words: str) -> str:
    """``lmtrain <words>``: the words are shell words already (see :func:`override`)."""
    return " ".join(("lmtrain", *words))


def comment(text: str) -> str:
    """A line shown among commands that a shell reads as nothing (a command that needs the user's own files)."""
    return f"# {text}"
