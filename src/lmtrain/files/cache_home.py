"""Where lmtrain keeps what it can make again (tokenizers, tokenized data, the CPU kernel choice):
``$XDG_CACHE_HOME/lmtrain``, else ``~/.cache/lmtrain``.

``XDG_CACHE_HOME`` is the freedesktop.org variable that moves every program's cache at once, as
clusters with a small home quota often set it; like other programs, lmtrain ignores a relative path
there (the specification says such a value is invalid).
"""

from __future__ import annotations

import os
from pathlib import Path

from lmtrain.errors import UserError
from lmtrain.files.atomic import cannot_create_reason, make_dirs

FOLDER = "lmtrain"


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/lmtrain`` when the variable holds an absolute path, else ``~/.cache/lmtrain``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path("~/.cache").expanduser()) / FOLDER


def cache_folder(configured: str | None) -> Path:
    """The data cache folder: ``data.cache_dir`` as given (``~`` expanded), or :func:`cache_home` when unset."""
    return Path(configured).expanduser() if configured else cache_home()


def open_cache_folder(configured: str | None) -> Path:
    """:func:`cache_folder`, created if missing.

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
    return folder
