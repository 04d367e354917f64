"""Text read from a run folder, made safe to print: control and format characters shown as escapes.

Folder names, overrides and error messages of a run folder are data someone else may have
written. Printed raw, an ANSI escape (``\\x1b[2J``) clears the terminal or rewrites what came
before, a carriage return hides text, a bidirectional override reorders it. Such characters are
shown as Python escapes (``\\x1b``, ``\\r``, ``\\u202e``) instead, so the text reads as it is.
"""

from __future__ import annotations

from typing import Any


def printable(value: Any) -> str:
    """``str(value)`` with every character that is not printable (other than a space) written as an escape."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
