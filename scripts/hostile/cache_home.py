"""The cache home (``$XDG_CACHE_HOME/lmtrain``, else ``~/.cache/lmtrain``) and ``data.cache_dir``: a file in
the way, a relative ``XDG_CACHE_HOME``, an empty ``data.cache_dir``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from hostile.common import TINY, Outcome, Workspace, last_line, refused


def _pretrain(ws: Workspace, name: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """A tiny pretrain run in ``ws.root/name`` with ``env`` added to (or, where empty, taken from) the environment."""
    full = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", **env}
    full = {key: value for key, value in full.items() if value}
    return subprocess.run(
        [sys.executable, "-m", "lmtrain", "pretrain", *TINY, *extra, f"hydra.run.dir={ws.root / name}"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=full,
    )


def xdg_cache_home_is_a_file(ws: Workspace) -> Outcome:
    blocker = ws.root / "xdg-file"
    blocker.write_text("not a folder\n")
    proc = _pretrain(ws, "xdg-file-run", {"XDG_CACHE_HOME": str(blocker)})
    fragment = f"XDG_CACHE_HOME={blocker}: cannot create the cache folder {blocker / 'lmtrain'}: a file is in the way"
    return refused(
        proc, fragment, intact=blocker.read_text() == "not a folder\n" and not (ws.root / "xdg-file-run").exists()
    )


def data_cache_dir_is_a_file(ws: Workspace) -> Outcome:
    blocker = ws.root / "cache-file"
    blocker.write_text("not a folder\n")
    proc = _pretrain(ws, "cache-file-run", {}, f"data.cache_dir={blocker}")
    return refused(proc, f"data.cache_dir={blocker}: cannot create the cache folder", intact=blocker.is_file())


def relative_xdg_cache_home_is_ignored(ws: Workspace) -> Outcome:
    home = ws.root / "relative-home"
    proc = _pretrain(ws, "relative-run", {"XDG_CACHE_HOME": "relative-cache", "HOME": str(home)})
    used = (home / ".cache" / "lmtrain" / "tokenizers").is_dir()
    said = "XDG_CACHE_HOME=relative-cache is not an absolute path, so it is ignored" in proc.stderr + proc.stdout
    held = proc.returncode == 0 and used and said and not (ws.root / "relative-cache").exists()
    return Outcome(proc.returncode, f"cache in ~/.cache/lmtrain: {used}; warned: {said}; {last_line(proc)}", held)


def empty_data_cache_dir(ws: Workspace) -> Outcome:
    proc = _pretrain(ws, "empty-cache-run", {}, "data.cache_dir=")
    fragment = "data.cache_dir='': must be a folder, or null for the default cache home"
    return refused(proc, fragment, intact=not (ws.root / "empty-cache-run").exists())


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "XDG_CACHE_HOME is a file": xdg_cache_home_is_a_file,
    "data.cache_dir is a file": data_cache_dir_is_a_file,
    "XDG_CACHE_HOME relative (ignored, as the specification says, and the log says so)": (
        relative_xdg_cache_home_is_ignored
    ),
    "data.cache_dir empty (refused, not read as unset)": empty_data_cache_dir,
}
