"""Find run directories: folders holding ``.hydra/config.yaml`` or ``metrics.jsonl``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from lmtrain.errors import UserError
from lmtrain.run_folder.layout import CHECKPOINTS_DIR, METRICS_FILE

DEFAULT_ROOTS = ("outputs", "multirun")  # where Hydra puts single runs and sweeps by default
# folders inside a run that never hold another run
_SKIP = {CHECKPOINTS_DIR, "tb", "wandb", "__pycache__", "node_modules"}


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (Hydra's saved config, or a metrics log)."""
    return (path / ".hydra" / "config.yaml").is_file() or (path / METRICS_FILE).is_file()


def _walk(root: Path) -> Iterable[Path]:
    for current, dirs, _ in os.walk(root, followlinks=False):
        here = Path(current)
        if is_run_dir(here):
            dirs.clear()  # a run holds no runs
            yield here
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP)


def find_run_dirs(paths: Iterable[str | Path] | None = None) -> list[Path]:
    """Run directories at or below ``paths``, sorted by path.

    Args:
        paths: folders to search; None searches ``./outputs`` and ``./multirun`` (skipping
            whichever does not exist).
    Returns:
        Each run directory once.
    Raises:
        UserError: if a path given explicitly does not exist.
    """
    if paths is None:
        roots = [Path(p) for p in DEFAULT_ROOTS if Path(p).is_dir()]
    else:
        roots = [Path(p) for p in paths]
        missing = [str(p) for p in roots if not p.exists()]
        if missing:
            raise UserError(f"no such run directory or folder: {', '.join(missing)}.")
    found: dict[Path, None] = {}
    for root in roots:
        for run in _walk(root):
            found.setdefault(run.resolve(), None)
    return sorted(found)
