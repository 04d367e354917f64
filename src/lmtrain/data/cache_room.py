"""A cache write that ran out of room (a full disk, a quota, a file-size limit) as one paragraph.

Python ignores SIGXFSZ, so a write past ``ulimit -f`` fails with EFBIG like a write to a full disk
fails with ENOSPC. What was being written is always a temporary file or folder, renamed into place
only when complete, and removed on the failure: the message can promise that a later run finds no
half-written entry and prepares it again.
"""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

from lmtrain.errors import UserError

_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# `tokenizers` and other Rust writers raise a plain Exception that quotes the OS error number
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def no_room(error: BaseException) -> BaseException | None:
    """The error, ``error`` or one it was raised from, that says a write found no room; None if none does."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_ROOM:
            return current
        match = _RUST_OS_ERROR.search(str(current))
        if match and int(match.group(1)) in _NO_ROOM:
            return current
        current = current.__cause__ or current.__context__
    return None


def cache_full(what: str, folder: Path, error: BaseException, key: str = "data.cache_dir") -> UserError:
    """The error for ``what`` that could not be written into ``folder`` (``key`` is the option that chose it).

    Args:
        what: what was being written, for the message.
        folder: where.
        error: the error :func:`no_room` found.
        key: the option or variable that chose ``folder``.
    """
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free / (1 << 20)
    return UserError(
        f"could not write {what} in {folder} ({' '.join(str(error).split())}): the disk, a quota or "
        f"a file-size limit (ulimit -f) is full; {free:.1f} MiB are free there. Nothing half-written was "
        f"kept: the next run prepares it again. Free some space or raise the limit, or set {key} to a "
        "folder on a disk with room."
    )
