"""`lmtrain resume RUN_DIR [key=value ...]`: continue a run in place with its own saved config.

    lmtrain resume outputs/pretrain/2026-12-01_10-00-00_bert
    lmtrain resume outputs/pretrain/2026-12-01_10-00-00_bert trainer.max_steps=2000

The run's command and overrides come from its ``.hydra/`` record (the newest resume's, if it was
continued before), and its config search path from ``.hydra/plugs.json`` (so a run of a user's own
plug resumes without ``hydra.searchpath`` typed again); the overrides given here replace those of
the same key. The run then goes on
as ``lmtrain <command> <overrides> hydra.run.dir=RUN_DIR trainer.resume=auto`` would, so the
saved config is compared with the new one and a change to the model or data is refused.

A run folder is data that users share, so the saved overrides are checked before anything runs
(:mod:`lmtrain.config.replay`): a Hydra setting that could run code (callbacks, logging handlers),
a ``_target_`` outside a plug, a resolver such as ``${oc.env:...}`` or a plug other than the one the
run was trained with is refused, naming the override and the file.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import yaml

from lmtrain.config.commands import FinetuneOptions, moved_keys
from lmtrain.config.diff import ADDED_KEYS, flatten
from lmtrain.config.replay import check_resumed_overrides
from lmtrain.errors import UserError
from lmtrain.run_folder.claim import HYDRA_DIR, has_checkpoint, saved_config_dir
from lmtrain.run_folder.config_record import override_key
from lmtrain.run_folder.provenance import Provenance, read_provenance

USAGE = "lmtrain resume RUN_DIR [key=value ...]"
log = logging.getLogger(__name__)
TRAINING_COMMANDS = ("pretrain", "finetune")


def _read_list(path: Path) -> list[str]:
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is unreadable ({error}); the run's overrides cannot be recovered. "
            "Continue it with `lmtrain <command> <its overrides> hydra.run.dir=<run> "
            "trainer.resume=auto`."
        ) from None
    if not isinstance(items, list):
        raise UserError(f"{path} is not a list of overrides; it was not written by lmtrain.")
    return [str(item) for item in items]


def _added(config_file: Path, replaced: set[str]) -> list[str]:
    """Overrides giving a run saved before a key of :data:`~lmtrain.config.diff.ADDED_KEYS` existed the value
    that does what it did (``trainer.packing=off``), unless typed here; said once in the log."""
    try:
        saved = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []  # the config check that follows reports an unreadable config
    keys = flatten(saved) if isinstance(saved, dict) else {}
    out = [f"{key}={value}" for key, value in ADDED_KEYS.items() if key not in keys and key not in replaced]
    if out:
        log.warning("%s predates %s: resuming with %s, as it ran", config_file, ", ".join(ADDED_KEYS), " ".join(out))
    return out


def _moved(saved: list[str], source: Path) -> list[str]:
    """The run's own saved overrides with a key that moved since it was saved written at its new place
    (``finetune.task_encoder=bilstm`` -> ``task.encoder=bilstm``): the same setting, said once in the log."""
    renamed = moved_keys(FinetuneOptions, "finetune.")
    out = []
    for item in saved:
        key, sep, value = item.partition("=")
        if sep and key in renamed:
            log.warning(
                "%s: the saved override %s is written %s=%s now (the key moved)", source, item, renamed[key], value
            )
            item = f"{renamed[key]}={value}"
        out.append(item)
    return out


def _command(run_dir: Path, record: Path) -> str:
    try:
        hydra = yaml.safe_load((record / "hydra.yaml").read_text(encoding="utf-8"))
        name = hydra["hydra"]["job"]["name"]
    except (OSError, yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError):
        name = None
    if name in TRAINING_COMMANDS:
        return name
    raise UserError(
        f"{run_dir} was not made by `lmtrain pretrain` or `lmtrain finetune` (its .hydra record says "
        f"{name or 'nothing'}), so there is no training to continue."
    )


def _check_folders(plugs: Provenance) -> None:
    """Refuse a recorded search path folder that is gone (the configs moved): Hydra would only say that a
    config group option is missing."""
    gone = [entry for entry in plugs.searchpath if not Path(entry[len("file://") :]).is_dir()]
    if gone:
        raise UserError(
            f"the run's config search path names {', '.join(gone)} (recorded in {plugs.source}), which "
            "is no folder now, so its own YAML (its plugs' presets) cannot be found. Give the folder "
            "where those configs are now: `lmtrain resume <run> hydra.searchpath=[file://<folder>]`."
        )


def command_line(argv: list[str]) -> list[str]:
    """The ``lmtrain`` arguments that continue the run ``argv[0]`` with the overrides ``argv[1:]``.

    Raises:
        UserError: no run directory given, or it holds no resumable run.
    """
    if not argv or argv[0] in ("-h", "--help"):
        raise UserError(
            f"usage: {USAGE}. Continues the run in RUN_DIR from its newest checkpoint with its own "
            "saved config; key=value overrides may change its length, cadence and loggers."
        )
    run_dir = Path(argv[0]).expanduser()
    if not run_dir.is_dir():
        raise UserError(
            f"{run_dir}: no such run directory; give a folder made by `lmtrain pretrain` or "
            "`lmtrain finetune` (see `lmtrain runs`)."
        )
    record = saved_config_dir(run_dir)
    if record is None:
        raise UserError(
            f"{run_dir} has no .hydra/config.yaml, so it is not an lmtrain run directory "
            "(see `lmtrain runs` for the runs under ./outputs)."
        )
    if not has_checkpoint(run_dir):
        raise UserError(
            f"{run_dir} holds no checkpoint yet, so there is nothing to continue; start the run "
            "again (trainer.overwrite=true to reuse the directory)."
        )
    command = _command(run_dir, record)
    new = argv[1:]
    replaced = {override_key(o) for o in new} | {"hydra.run.dir", "trainer.resume", "trainer.overwrite"}
    saved = [
        o
        for o in _moved(_read_list(record / "overrides.yaml"), record / "overrides.yaml")
        if override_key(o) not in replaced
    ]
    saved += _added(run_dir / HYDRA_DIR / "config.yaml", replaced)
    plugs = read_provenance(run_dir)  # refuses a damaged record; notes where the run found its plugs
    if plugs is not None and plugs.searchpath and "hydra.searchpath" not in replaced:
        _check_folders(plugs)
        saved.append(plugs.search_path_override())  # checked below with the other saved overrides
    typed = [*new, f"hydra.run.dir={run_dir.resolve()}", "trainer.resume=auto"]
    check_resumed_overrides(
        command,
        saved,
        typed,
        record / "overrides.yaml",
        run_dir / HYDRA_DIR / "config.yaml",
        Path(str(resources.files("lmtrain") / "configs")),
    )
    return [command, *saved, *typed]
