"""The record of a run's config: what a command writes under the run's ``.hydra/`` folder (the config, the
command line's overrides, Hydra's settings and the plugs' provenance; ``.hydra/resume-<n>/`` for each
continuation), and how the newest one is read back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lmtrain.config.plug_nodes import PLUG_GROUPS
from lmtrain.files.atomic import make_dirs, write_text
from lmtrain.run_folder.provenance import PLUGS_FILE, record_text

log = logging.getLogger(__name__)

HYDRA_DIR = ".hydra"
RESUME_PREFIX = "resume-"


def _resume_records(run_dir: Path) -> dict[int, Path]:
    """``n -> .hydra/resume-<n>`` of every earlier resume of the run."""
    return {
        int(p.name[len(RESUME_PREFIX) :]): p
        for p in (run_dir / HYDRA_DIR).glob(f"{RESUME_PREFIX}*")
        if p.name[len(RESUME_PREFIX) :].isdigit()
    }


def saved_config_dir(run_dir: Path) -> Path | None:
    """The ``.hydra`` folder of the run's newest config: the last resume's, else the original."""
    resumes = _resume_records(run_dir)
    for candidate in [*(resumes[n] for n in sorted(resumes, reverse=True)), run_dir / HYDRA_DIR]:
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def read_saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's newest saved config as plain nested dicts (None if it has none or it is unreadable)."""
    folder = saved_config_dir(run_dir)
    if folder is None:
        return None
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        log.warning("%s is unreadable; the resumed config cannot be compared with it", folder / "config.yaml")
        return None
    return config if isinstance(config, dict) else None


def hydra_node() -> Any | None:
    """The running command's Hydra settings (None outside Hydra: library use, tests)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get()
    except Exception:  # not under Hydra (library use, tests)
        return None


def override_key(override: str) -> str:
    """The key of a ``key=value`` override, without Hydra's ``+`` / ``++`` / ``~`` prefixes."""
    return override.split("=", 1)[0].lstrip("+~")


def typed_keys() -> set[str]:
    """The keys the running command's line set (``data.max_seq_len`` for ``data.max_seq_len=1024``; a resumed
    run's replayed overrides included); empty outside Hydra (library use, tests)."""
    hydra = hydra_node()
    return {override_key(str(o)) for o in hydra.overrides.task} if hydra is not None else set()


def _next_resume_dir(run_dir: Path) -> Path:
    return run_dir / HYDRA_DIR / f"{RESUME_PREFIX}{max(_resume_records(run_dir), default=0) + 1}"


def write_config_record(run_dir: Path, cfg: DictConfig, resuming: bool) -> Path:
    """Write config, overrides and Hydra settings under ``.hydra/`` (``.hydra/resume-<n>/`` when continuing)."""
    continuing = resuming and (run_dir / HYDRA_DIR / "config.yaml").is_file()
    folder = make_dirs(_next_resume_dir(run_dir) if continuing else run_dir / HYDRA_DIR)
    hydra = hydra_node()
    overrides = list(hydra.overrides.task) if hydra is not None else []
    texts = {"config.yaml": OmegaConf.to_yaml(cfg), "overrides.yaml": yaml.safe_dump(overrides)}
    if hydra is not None:
        texts["hydra.yaml"] = OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra}))
    targets = {
        group: cfg[group]["_target_"]
        for group in PLUG_GROUPS
        if isinstance(cfg.get(group), DictConfig) and isinstance(cfg[group].get("_target_"), str)
    }
    if targets:  # a command built from plugs: where they came from (lmtrain.run_folder.provenance)
        texts[PLUGS_FILE] = record_text(targets, list(hydra.searchpath) if hydra is not None else [])
    for name, text in texts.items():
        write_text(folder / name, text)
    return folder
