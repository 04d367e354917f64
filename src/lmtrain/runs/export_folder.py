"""Where `lmtrain export` may write, and how it puts an export there: whole, or not at all.

An export goes into a new or empty folder, or replaces a previous export of this tool, recognised
by the marker file it writes last (``lmtrain-export.json``: who wrote it, from which checkpoint,
and the names of the files it wrote). It never goes into, over or around a run folder or a
checkpoint, never through a symbolic link, and never over a file the export did not write.
The files are written into a temporary folder beside ``out=`` and swapped in with one rename.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError
from lmtrain.files.atomic import follow_umask
from lmtrain.files.checkpoints import LAST, is_checkpoint
from lmtrain.run_folder.layout import CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE
from lmtrain.run_folder.status import STATUS_FILE

MARKER = "lmtrain-export.json"
WRITER = "lmtrain export"
# what makes a folder a run folder: the files a training or other command writes in it
_RUN_FILES = (".hydra/config.yaml", f"{CHECKPOINTS_DIR}/{LAST}", SUMMARY_FILE, METRICS_FILE, STATUS_FILE)
_WHAT_TO_DO = (
    "Name a new folder outside every run folder (e.g. out=my-model), an empty one, or a previous export to replace."
)


def _refuse(out: Path, problem: str) -> UserError:
    return UserError(
        f"out={out} {problem}; export writes only a new or empty folder, or replaces a previous "
        f"export of its own (one holding {MARKER}). {_WHAT_TO_DO}"
    )


def _run_folder_file(folder: Path) -> str | None:
    """The file that marks ``folder`` as a run folder (``.hydra``, ``checkpoints``, ``summary.json`` ...), or None."""
    return next((name for name in _RUN_FILES if os.path.lexists(folder / name)), None)


def previous_export_files(folder: Path) -> list[str] | None:
    """The files of ``folder`` if it is a previous export of this tool, else None.

    It is one when its marker names this tool and every entry is a plain file the marker lists.

    Raises:
        UserError: the marker is there but the folder holds an entry the export did not write
            (another file, a folder, a symbolic link).
    """
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    listed = marker.get("files") if isinstance(marker, dict) and marker.get("written_by") == WRITER else None
    if not isinstance(listed, list) or not all(isinstance(n, str) and n == Path(n).name for n in listed):
        return None
    entries = sorted(os.listdir(folder))
    for name in entries:
        if os.path.islink(folder / name):
            raise _refuse(folder, f"holds {name}, which is a symbolic link, not a file of the previous export")
        if name != MARKER and (name not in listed or not (folder / name).is_file()):
            raise _refuse(folder, f"holds {name}, which the previous export there did not write")
    return entries


def check_out_folder(out: str, source: Path) -> Path:
    """The folder ``out=`` names, as an absolute path, once it is safe to export ``source`` there.

    Args:
        out: the ``out=`` value.
        source: the checkpoint or Hugging Face folder being exported.
    Raises:
        UserError: ``out`` is a symbolic link or a file, is inside, equal to or around a run folder,
            a checkpoint or ``source``, or is a folder holding files a previous export did not write.
    """
    path = Path(os.path.abspath(Path(out).expanduser()))
    if path == path.parent:
        raise _refuse(path, "is the root of the filesystem")
    if path.is_symlink():
        raise _refuse(path, "is a symbolic link, which export never writes through")
    if path.exists() and not path.is_dir():
        raise _refuse(path, "is a file, not a folder; name a folder")
    resolved, source = path.parent.resolve() / path.name, source.resolve()
    for folder in resolved.parents:
        if _run_folder_file(folder):
            raise _refuse(path, f"is inside the run folder {folder} (it holds {_run_folder_file(folder)})")
        if is_checkpoint(folder):
            raise _refuse(path, f"is inside the checkpoint {folder}")
    if resolved.is_dir() and _run_folder_file(resolved):
        raise _refuse(path, f"is a run folder (it holds {_run_folder_file(resolved)})")
    if resolved.is_dir() and is_checkpoint(resolved) and previous_export_files(resolved) is None:
        raise _refuse(path, "is a checkpoint")
    if resolved == source or source in resolved.parents or resolved in source.parents:
        raise _refuse(path, f"is or holds the model being exported ({source})")
    if not resolved.is_dir() or not any(resolved.iterdir()) or previous_export_files(resolved) is not None:
        return path
    names = sorted(os.listdir(resolved))
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise _refuse(path, f"holds files that lmtrain export did not write ({shown})")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd, exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(tmp: Path, final: Path) -> None:
    """Put the finished ``tmp`` at ``final``, replacing a previous export (checked again: it may have changed)."""
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return
    check_previous = (
        final.is_dir()
        and not final.is_symlink()
        and (not any(final.iterdir()) or previous_export_files(final) is not None)
    )
    if not check_previous:
        raise _refuse(final, "was changed while the export was written")
    if not _exchange(tmp, final):
        old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
        os.replace(final, old)  # an empty directory is replaced; ``final`` is gone only until the next line
        os.rename(tmp, final)
        tmp = old
    shutil.rmtree(tmp)  # the previous export, now at the temporary name (rmtree never follows a link)


@contextmanager
def export_folder(out: Path, record: dict[str, Any]) -> Iterator[Path]:
    """Yield a new temporary folder beside ``out``; when the block succeeds, mark it and swap it in.

    ``record`` (the source checkpoint, the format) goes into the marker with the names of the files
    written. On any failure the temporary folder is removed and ``out`` is left as it was.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        yield tmp
        files = sorted(os.listdir(tmp))
        (tmp / MARKER).write_text(
            json.dumps({"written_by": WRITER, **record, "files": files}, indent=2) + "\n", encoding="utf-8"
        )
        follow_umask(tmp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
