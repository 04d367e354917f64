"""Where lmtrain keeps what it can make again (tokenizers, tokenized data, the CPU kernel choice):
``$XDG_CACHE_HOME/lmtrain``, else ``~/.cache/lmtrain``.

``XDG_CACHE_HOME`` is the freedesktop.org variable that moves every program's cache at once, as
clusters with a small home quota often set it; like other programs, lmtrain ignores a relative path
there (the specification says such a value is invalid), and says so in the run's log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lmtrain.errors import UserError
from lmtrain.files.atomic import cannot_create_reason, make_dirs

FOLDER = "lmtrain"

log = logging.getLogger(__name__)


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/lmtrain`` when the variable holds an absolute path, else ``~/.cache/lmtrain``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path("~/.cache").expanduser()) / FOLDER


def cache_folder(configured: str | None) -> Path:
    """The data cache folder: ``data.cache_dir`` as given (``~`` expanded), or :func:`cache_home` when unset."""
    return Path(configured).expanduser() if configured else cache_home()


def chosen_by(configured: str | None) -> str:
    """What chose the cache folder, in words: ``data.cache_dir``, ``XDG_CACHE_HOME`` or the default."""
    if configured:
        return "data.cache_dir"
    return "XDG_CACHE_HOME" if os.path.isabs(os.environ.get("XDG_CACHE_HOME", "")) else "the default cache home"


def open_cache_folder(configured: str | None) -> Path:
    """:func:`cache_folder`, created if missing; the log names it and what chose it.

    A relative ``XDG_CACHE_HOME`` (ignored) gets a warning that says so, when it would have chosen the folder.

    Raises:
        UserError: it cannot be made (a file in the way, no permission), naming the setting that chose it.
    """
    folder = cache_folder(configured)
    try:
        make_dirs(folder)  # all or nothing; a link to an existing folder is the user's setup, used
    except OSError as error:
        reason = cannot_create_reason(error)
        if configured:
            chosen, fix = f"data.cache_dir={configured}", "set data.cache_dir to a folder you can write"
        elif os.path.isabs(os.environ.get("XDG_CACHE_HOME", "")):
            chosen = f"XDG_CACHE_HOME={os.environ['XDG_CACHE_HOME']}"
            fix = "set XDG_CACHE_HOME, or data.cache_dir, to a folder you can write"
        else:
            chosen, fix = "the default cache home", "set data.cache_dir (or XDG_CACHE_HOME) to a folder you can write"
        raise UserError(
            f"{chosen}: cannot create the cache folder {folder}: {reason}. Tokenizers and tokenized "
            f"examples are kept there; {fix}."
        ) from None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if not configured and xdg and not os.path.isabs(xdg):
        log.warning(
            "XDG_CACHE_HOME=%s is not an absolute path, so it is ignored (the XDG Base Directory specification "
            "says a relative one is invalid); the cache is %s. Set XDG_CACHE_HOME to an absolute path, or set "
            "data.cache_dir, to keep it elsewhere.",
            xdg,
            folder,
        )
    log.info("cache folder %s (chosen by %s)", folder, chosen_by(configured))
    return folder
