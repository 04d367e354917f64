"""Where a command's run folder goes, and removing it again when the command is refused before any work.

Hydra creates the run folder (``hydra.run.dir``) before lmtrain's command starts, so two things are
settled around it:

- before Hydra starts, :meth:`RunPlacement.prepare` checks the folder the command line names and
  creates it: an existing file there, or a path where no folder can be made, is one paragraph with
  exit code 2 and nothing written; and lmtrain then knows whether it made the folder;
- after a command is refused with exit code 2, :meth:`RunPlacement.discard_unused` looks at what
  it left: if it did no work (lmtrain's entries in the folder, each recorded as its own, are only
  its bookkeeping: ``.lmtrain-files``, ``.lock``, ``.hydra/``, ``status.json``, the job log; or
  empty files opened for results that never came), they go, and the folder too when this process
  made it. A mistyped command therefore leaves no run folder for ``lmtrain runs`` to list, and a
  folder of the user's is left as it was.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmtrain.errors import EXIT_USER_ERROR, UserError
from lmtrain.files.atomic import cannot_create_reason, create_dirs, remove_entry
from lmtrain.run_folder.claim import HYDRA_DIR
from lmtrain.run_folder.job_log import job_log_handlers, stop_job_logs
from lmtrain.run_folder.layout import hydra_run_dir
from lmtrain.run_folder.lock import LOCK_FILE, RunLock
from lmtrain.run_folder.manifest import MANIFEST_FILE, RunManifest
from lmtrain.run_folder.status import STATUS_FILE

BOOKKEEPING = (MANIFEST_FILE, LOCK_FILE, HYDRA_DIR, STATUS_FILE)


def _cannot_create(value: str, path: Path, error: OSError) -> UserError:
    where = f" ({error.filename})" if error.filename and str(error.filename) != str(path) else ""
    reason = cannot_create_reason(error)
    return UserError(
        f"hydra.run.dir={value}: cannot create the run folder {path}: {reason}{where}. Choose a folder "
        "you can write, e.g. hydra.run.dir=outputs/my-run; nothing was written."
    )


@dataclass
class RunPlacement:
    """The run folder a command line names, and whether this process created it.

    Args:
        path: the folder ``hydra.run.dir`` names (absolute), or None when it is left to Hydra
            (the default time-stamped folder, an interpolated value, a sweep).
        existed: whether ``path`` was there before this process.
        created: the folders this process created for it, outermost first.
    """

    path: Path | None = None
    existed: bool = True
    created: list[Path] = field(default_factory=list)

    @classmethod
    def prepare(cls, value: str | None) -> RunPlacement:
        """Check the folder ``hydra.run.dir=value`` names and create it (None: left to Hydra).

        Raises:
            UserError: an existing file is there, the folder is not writable, or it cannot be made;
                nothing was written then.
        """
        if value is None:
            return cls()
        path = Path(os.path.abspath(value))
        if os.path.exists(path):
            if not path.is_dir():
                raise UserError(
                    f"hydra.run.dir={value}: {path} is a file, not a folder. A run writes a folder "
                    "of files; name a new folder (lmtrain creates it) or an existing one. Nothing "
                    "was written."
                )
            if not os.access(path, os.W_OK | os.X_OK):
                raise UserError(
                    f"hydra.run.dir={value}: the folder {path} is not writable (permission denied). "
                    "Choose a folder you can write, e.g. hydra.run.dir=outputs/my-run; nothing was "
                    "written."
                )
            return cls(path, existed=True)
        try:
            created = create_dirs(path)
        except OSError as error:
            raise _cannot_create(value, path, error) from None
        return cls(path, existed=False, created=created)

    @classmethod
    def from_overrides(cls, overrides: list[str]) -> RunPlacement:
        """:meth:`prepare` for the last ``hydra.run.dir=`` of ``overrides`` (left to Hydra if interpolated)."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        values = [
            OverridesParser.create().parse_overrides([o])[0].value()
            for o in overrides
            if "=" in o and o.split("=", 1)[0].lstrip("+") == "hydra.run.dir"
        ]
        value = str(values[-1]) if values else None
        return cls.prepare(value if value is not None and "${" not in value else None)

    def discarding_unused(self, task: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``task`` (a Hydra task function) that, when it stops with exit code 2, calls :meth:`discard_unused`."""

        @functools.wraps(task)
        def wrapped(cfg: Any) -> Any:
            run_dir = hydra_run_dir()
            made = self.made(run_dir)
            try:
                return task(cfg)
            except SystemExit as stop:
                if stop.code == EXIT_USER_ERROR:
                    self.discard_unused(run_dir, made)
                raise

        return wrapped

    def made(self, run_dir: Path) -> bool:
        """Whether this process made ``run_dir`` (asked as the command starts, before it writes anything).

        A folder this placement did not check was made by Hydra for this process if it is empty.
        """
        run_dir = Path(os.path.abspath(run_dir))
        if run_dir == self.path:
            return not self.existed
        try:
            with os.scandir(run_dir) as entries:
                return next(entries, None) is None
        except OSError:
            return False

    def discard_unused(self, run_dir: Path, made: bool) -> bool:
        """Remove what a refused command left in ``run_dir`` if it did no work; see the module docstring.

        Args:
            run_dir: the command's run folder.
            made: :meth:`made`, asked when the command started.
        Returns:
            Whether anything was removed.
        """
        run_dir = Path(os.path.abspath(run_dir))
        left = _bookkeeping_only(run_dir, made)
        if left is None:
            return False
        if left:
            lock = RunLock(run_dir)
            if not lock.acquire_if_free("lmtrain (removing the run folder of a refused command)"):
                return False
            try:
                stop_job_logs(run_dir)
                for name in [*sorted(left - {LOCK_FILE, MANIFEST_FILE}), MANIFEST_FILE, LOCK_FILE]:
                    remove_entry(run_dir / name)
            finally:
                lock.release()
        if made:
            for folder in [run_dir, *(p for p in reversed(self.created) if p != run_dir)]:
                try:
                    folder.rmdir()
                except OSError:  # not empty (something else is in it now): it stays
                    break
        return bool(left) or made


def _bookkeeping_only(run_dir: Path, made: bool) -> set[str] | None:
    """lmtrain's entries in ``run_dir`` if all are its bookkeeping or empty (no work done); else None.

    The user's own entries in the folder are not lmtrain's and are left out (and stay).
    """
    if not os.path.isdir(run_dir) or os.path.islink(run_dir):
        return None
    names = set(os.listdir(run_dir))
    manifest = RunManifest(run_dir)
    if not manifest.exists():  # refused before the folder's record was started: at most its .lock
        return names if made and names <= {LOCK_FILE} else None
    try:
        ours = names & (manifest.names() | {MANIFEST_FILE})
    except UserError:
        return None
    allowed = {*BOOKKEEPING, *(h.path.name for h in job_log_handlers(run_dir))}
    return ours if all(name in allowed or _empty(run_dir / name) for name in ours) else None


def _empty(path: Path) -> bool:
    """Whether ``path`` is an empty file or folder (opened for results that never came)."""
    try:
        info = path.lstat()
        return (stat.S_ISREG(info.st_mode) and info.st_size == 0) or (
            stat.S_ISDIR(info.st_mode) and not os.listdir(path)
        )
    except OSError:
        return False
