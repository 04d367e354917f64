"""``.hydra/plugs.json``: where a run's plugs came from, so later commands find them again.

A run of a user's own plug needs two things that live outside lmtrain: the plug's YAML, found on
Hydra's config search path (``hydra.searchpath=[file://...]``), and its Python package, found on the
module path (``PYTHONPATH``). When a run starts, lmtrain records both beside its config::

    {"searchpath": ["file:///home/me/plugs/configs"],
     "plugs": {"objective": {"target": "span_masking.SpanMaskingObjective", "module": "span_masking",
                             "folder": "/home/me/plugs"}}}

``lmtrain resume`` adds the recorded search path when it replays the run (the folders are *data*
locations for YAML only, and only ``file://`` folders are accepted), and when a plug's module cannot
be imported the error names the folder the run found it in and the command to type. lmtrain never
adds a recorded folder to the module path itself: importing from it would run code a run folder
chose, and a run folder is data that users download and share.

A record that is a link, not a small regular file, not JSON, or holds anything but absolute
``file://`` folders and plug class paths is refused, naming the file and the key.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtrain.errors import UserError
from lmtrain.plugs import check_target, remember_origins

PLUGS_FILE = "plugs.json"
_HYDRA_DIR = ".hydra"  # the run's config record (lmtrain.run_folder.claim writes it)
_RESUME = "resume-"  # .hydra/resume-<n>/: the record of the n-th time the run was continued
_MAX_BYTES = 1 << 16  # a record names a few folders and classes
_ODD = ("'", '"', "\\", "${", ",", "[", "]")  # would change how the entry reads as a Hydra override


@dataclass(frozen=True)
class PlugOrigin:
    """Where a run imported one plug from: its ``_target_``, the module holding it, the module path folder."""

    group: str
    target: str
    module: str
    folder: str | None


@dataclass(frozen=True)
class Provenance:
    """A run's record of its config search path (absolute ``file://`` folders) and its plugs' origins."""

    searchpath: tuple[str, ...]
    plugs: tuple[PlugOrigin, ...]
    source: Path

    def search_path_override(self) -> str:
        """The Hydra override that puts the recorded folders back on the search path."""
        return "hydra.searchpath=[" + ",".join(f"'{entry}'" for entry in self.searchpath) + "]"


def absolute_search_path(entries: list[str] | tuple[str, ...]) -> list[str]:
    """The ``file://`` entries of a search path made absolute (from the working directory); others dropped.

    A ``pkg://`` entry is not recorded: a run folder may never make lmtrain import a package.
    """
    found = []
    for entry in entries:
        if isinstance(entry, str) and entry.startswith("file://"):
            found.append("file://" + os.path.abspath(os.path.expanduser(entry[len("file://") :])))
    return found


def module_folder(module: str) -> str | None:
    """The module path folder that ``module``'s top-level package was (or would be) imported from.

    Found without running any code: the loaded module's file, else the import system's finder.
    """
    top = module.split(".")[0]
    loaded = sys.modules.get(top)
    if loaded is not None:
        locations = list(getattr(loaded, "__path__", None) or [])
        file = getattr(loaded, "__file__", None)
        is_package = hasattr(loaded, "__path__")
    else:
        try:
            spec = importlib.util.find_spec(top)  # a top-level name: no parent package is imported
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None
        locations = list(spec.submodule_search_locations or [])
        file = spec.origin if spec.has_location else None
        is_package = spec.submodule_search_locations is not None
    base = Path(file).parent if file else (Path(locations[0]) if locations else None)
    if base is None:
        return None
    return str((base.parent if is_package else base).resolve())


def record_text(targets: dict[str, str], searchpath: list[str]) -> str:
    """The ``plugs.json`` text for a run started with the plugs ``targets`` (group -> ``_target_``)
    and the config search path ``searchpath`` (as given)."""
    plugs = {}
    for group, target in targets.items():
        module = target.rpartition(".")[0]
        if target.startswith("lmtrain."):
            continue  # lmtrain's own plugs come with lmtrain
        plugs[group] = {"target": target, "module": module, "folder": module_folder(module)}
    return json.dumps({"searchpath": absolute_search_path(searchpath), "plugs": plugs}, indent=2) + "\n"


def _refused(source: Path, key: str, why: str) -> UserError:
    return UserError(
        f"{key} in {source}: {why} This file is lmtrain's record of where the run's plugs came from; "
        "a run folder is data, so nothing named in it was imported or run. Restore the file from the "
        "run's original copy, or delete it and give the search path yourself "
        "(hydra.searchpath=[file://<your configs>])."
    )


def _read_json(source: Path) -> Any:
    """The JSON in ``source``, read without following a link; UserError when it is not a small regular JSON file."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        why = (
            "it is a symbolic link; lmtrain never reads its records through a link."
            if error.errno == errno.ELOOP
            else f"it cannot be read ({error.strerror})."
        )
        raise _refused(source, "the file", why) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_BYTES:
            raise _refused(source, "the file", "it is not a small regular file, so lmtrain did not write it.")
        data = file.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _refused(source, "the file", f"it is not JSON ({error}): truncated or not written by lmtrain.") from None


def _search_path(source: Path, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _refused(source, "searchpath", "it is not a list of folders.")
    for index, entry in enumerate(value):
        key = f"searchpath[{index}]"
        if not isinstance(entry, str) or not entry.startswith("file://"):
            raise _refused(
                source,
                key,
                f"{entry!r} is not a `file://` folder; any other kind (`pkg://` imports a Python package) is refused.",
            )
        path = entry[len("file://") :]
        if (
            not os.path.isabs(path)
            or os.path.normpath(path) != path
            or "\n" in path
            or any(c in path for c in _ODD)
            or not path.isprintable()
        ):
            raise _refused(
                source,
                key,
                f"{entry!r} is not an absolute folder in plain form; lmtrain records "
                "`file://` followed by an absolute path, without `..`, quotes or brackets.",
            )
    return tuple(value)


def _plugs(source: Path, value: Any) -> tuple[PlugOrigin, ...]:
    if not isinstance(value, dict):
        raise _refused(source, "plugs", "it is not a mapping of config groups to plugs.")
    found = []
    for group, node in value.items():
        key = f"plugs.{group}"
        if not isinstance(node, dict) or not isinstance(node.get("target"), str):
            raise _refused(source, key, "it does not name its plug's `target`.")
        try:
            check_target(node["target"], f"{key}.target")
        except UserError as error:
            raise _refused(source, f"{key}.target", str(error)) from None
        folder = node.get("folder")
        plain = isinstance(folder, str) and os.path.isabs(folder) and folder.isprintable()
        if folder is not None and not plain:
            raise _refused(source, f"{key}.folder", f"{folder!r} is not an absolute folder.")
        found.append(PlugOrigin(str(group), node["target"], node["target"].rpartition(".")[0], folder))
    return tuple(found)


def _record_file(run_dir: Path) -> Path:
    """The newest record: the last resume's ``.hydra/resume-<n>/plugs.json`` that exists, else the original's."""
    hydra = run_dir / _HYDRA_DIR
    resumes = {int(p.name[len(_RESUME) :]): p for p in hydra.glob(f"{_RESUME}*") if p.name[len(_RESUME) :].isdigit()}
    for _, folder in sorted(resumes.items(), reverse=True):
        if os.path.lexists(folder / PLUGS_FILE):
            return folder / PLUGS_FILE
    return hydra / PLUGS_FILE


def read_provenance(run_dir: str | Path) -> Provenance | None:
    """The run's newest record (``.hydra/plugs.json``, or a resume's), or None for a run made before lmtrain kept one.

    Raises:
        UserError: the record is a link, not a small regular file, not JSON, or holds a search path entry
            that is not an absolute ``file://`` folder or a plug that is not a class path; naming key and file.
    """
    source = _record_file(Path(run_dir))
    data = _read_json(source)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise _refused(source, "the file", "it is not a JSON object.")
    record = Provenance(_search_path(source, data.get("searchpath", [])), _plugs(source, data.get("plugs", {})), source)
    remember_origins({plug.target: plug.folder for plug in record.plugs}, str(source))
    return record


def note_run_plugs(checkpoint: Path) -> None:
    """Read the plug record of the run holding ``checkpoint`` (``<run>/checkpoints/step-N``), if any, so that
    a plug that does not import is reported with the folder the run found it in.

    Raises:
        UserError: as :func:`read_provenance`.
    """
    if checkpoint.parent.name == "checkpoints":
        read_provenance(checkpoint.parent.parent)
