"""Claim a run directory before a command writes anything into it.

The run directory is the user's property. Before a command's ``run`` starts, :func:`claim_run_dir`

1. locks the directory (one process at a time; DDP ranks other than 0 do not lock, rank 0 holds
   it for the job);
2. refuses a directory that already holds a run (a checkpoint or a summary) unless the command
   continues it (``trainer.resume``) or the user asks for it to be replaced
   (``trainer.overwrite=true``, which empties it first so nothing is mixed);
3. refuses a directory where a name the command writes (``tokenizer.json``, ``tb/``, its job log
   ...) is taken by an entry lmtrain did not write, or by a link (see :mod:`lmtrain.run_folder.manifest`);
4. when a run is continued, compares the new config with the run's saved one: changes to the
   model, tokenizer, data, objective or batch shape are refused with the list of differences;
   the length, cadence and logging settings may change and are listed in one line;
5. only then changes the folder: starts its ``.lmtrain-files`` record, removes an earlier run's or
   attempt's entries (recorded ones only) when it is replaced, and half-written checkpoints a killed
   save left behind (``checkpoints/.tmp-step-N-*``);
6. records the config: ``.hydra/config.yaml``, ``overrides.yaml``, ``hydra.yaml`` and, for a command built
   from plugs, ``plugs.json`` (where they came from: :mod:`lmtrain.run_folder.provenance`) for a new run,
   ``.hydra/resume-<n>/`` beside the original ones for a continued run (Hydra itself is told not
   to write them, so a refused command leaves them as they were), and opens the job log.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from lmtrain.config.commands import FinetuneOptions, moved_keys
from lmtrain.config.diff import ADDED_KEYS, ConfigChanges, compare_configs
from lmtrain.errors import UserError
from lmtrain.files.atomic import remove_entry
from lmtrain.files.checkpoints import is_checkpoint
from lmtrain.run_folder.config_record import (
    HYDRA_DIR,
    hydra_node,
    override_key,
    read_saved_config,
    saved_config_dir,
    write_config_record,
)
from lmtrain.run_folder.job_log import job_log_handlers, start_job_logs
from lmtrain.run_folder.layout import CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE, TOKENIZER_FILE
from lmtrain.run_folder.lock import LOCK_FILE, RunLock
from lmtrain.run_folder.manifest import MANIFEST_FILE, RunManifest
from lmtrain.run_folder.status import STATUS_FILE

log = logging.getLogger(__name__)


@dataclass
class RunClaim:
    """A run directory this process may write: its lock, and whether the command continues a run."""

    path: Path
    lock: RunLock | None
    resuming: bool = False

    def release(self) -> None:
        """Drop the lock (at the end of the command)."""
        if self.lock is not None:
            self.lock.release()


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds at least one complete checkpoint."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    return checkpoints.is_dir() and any(p.name.startswith("step-") and is_checkpoint(p) for p in checkpoints.iterdir())


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run's results: a checkpoint or a summary."""
    return (run_dir / SUMMARY_FILE).is_file() or has_checkpoint(run_dir)


def remove_orphan_saves(run_dir: Path) -> list[Path]:
    """Delete ``checkpoints/.tmp-*`` (a killed save) and ``.preflight-*`` (a killed preflight) directories."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    removed = (
        [
            p
            for pattern in (".tmp-*", ".preflight-*")
            for p in checkpoints.glob(pattern)
            if p.is_dir() and not p.is_symlink()
        ]
        if checkpoints.is_dir() and not checkpoints.is_symlink()
        else []
    )
    for path in removed:
        remove_entry(path)
        log.warning("removed %s, a checkpoint whose save was interrupted", path)
    return removed


# what a command may write directly in its run folder besides .hydra/, status.json and its job log:
# each name is checked before the command changes anything (an entry lmtrain did not write refuses it)
COMMON_OUTPUTS = (HYDRA_DIR, STATUS_FILE, METRICS_FILE, SUMMARY_FILE)
TRAINING_OUTPUTS = (CHECKPOINTS_DIR, TOKENIZER_FILE, "curves.png", "confusion.png", "f1_per_class.png")
LOGGER_OUTPUTS = {"tensorboard": "tb", "wandb": "wandb", "mlflow": "mlflow_run_id"}  # by trainer.loggers
COMMAND_OUTPUTS = {
    "evaluate": (TOKENIZER_FILE,),
    "generate": ("generations.jsonl",),
    "embed": ("vectors.bin", "vectors.w2v.txt", "vectors.glove.txt"),
}
# lmtrain's own bookkeeping: kept when an earlier run is removed from the folder
_KEPT = (LOCK_FILE, MANIFEST_FILE)


def output_names(cfg: DictConfig, command: str, run_dir: Path) -> list[str]:
    """The names ``command`` may create directly in ``run_dir`` (its job log included)."""
    trainer = cfg.get("trainer")
    training = TRAINING_OUTPUTS if trainer is not None else ()
    names = (trainer.get("loggers") or []) if trainer is not None else []
    loggers = tuple(LOGGER_OUTPUTS[n] for n in names if n in LOGGER_OUTPUTS)
    logs = tuple(handler.path.name for handler in job_log_handlers(run_dir))
    return [*COMMON_OUTPUTS, *training, *loggers, *COMMAND_OUTPUTS.get(command, ()), *logs]


def empty_run_dir(run_dir: Path) -> None:
    """Remove an earlier run's files (``trainer.overwrite=true``, or an attempt that saved nothing).

    Only the entries recorded in the folder's ``.lmtrain-files`` go (a link is removed, never
    followed); the lock, the record and the user's own files stay.
    """
    manifest = RunManifest(run_dir)
    gone = sorted(manifest.names() - set(_KEPT))
    for name in gone:
        remove_entry(run_dir / name)
    manifest.forget(gone)


def _leftovers(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds entries an earlier lmtrain attempt created (its record, metrics, status)."""
    return any(os.path.lexists(run_dir / name) for name in RunManifest(run_dir).names() - set(_KEPT))


def _user_chose_dir() -> bool:
    """Whether the command line set the run directory (``hydra.run.dir`` / ``hydra.sweep.dir``)."""
    hydra = hydra_node()
    if hydra is None:
        return True
    return any(str(o).lstrip("+").startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in hydra.overrides.hydra)


def _comparable_overrides(overrides: list[str]) -> set[str]:
    return {o for o in overrides if not override_key(o).startswith(("hydra.", "trainer.resume", "trainer.overwrite"))}


def latest_unfinished_run(parent: Path, overrides: list[str]) -> Path | None:
    """The newest run under ``parent`` with a checkpoint, no summary and the same overrides (resume aside)."""
    wanted = _comparable_overrides(overrides)
    found = []
    for run in parent.iterdir() if parent.is_dir() else []:
        folder = saved_config_dir(run) if run.is_dir() else None
        if folder is None or (run / SUMMARY_FILE).exists() or not has_checkpoint(run):
            continue
        try:
            saved = yaml.safe_load((folder / "overrides.yaml").read_text(encoding="utf-8")) or []
        except (OSError, yaml.YAMLError):
            continue
        if _comparable_overrides([str(o) for o in saved]) == wanted:
            found.append(run)
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def _refuse_unplaced_resume(run_dir: Path, command: str) -> None:
    """``trainer.resume=auto`` in a directory Hydra just made up: say which run it could mean."""
    hydra = hydra_node()
    overrides = list(hydra.overrides.task) if hydra is not None else []
    candidate = latest_unfinished_run(run_dir.parent, overrides)
    if candidate is not None:
        hint = (
            f"The latest unfinished run with these overrides is {candidate}: continue it with "
            f"`lmtrain resume {candidate}`."
        )
    else:
        hint = f"No unfinished run with these overrides is under {run_dir.parent}."
    raise UserError(
        f"trainer.resume=auto needs the run directory to continue, but none was given, so this "
        f"command would start a new run in {run_dir}. {hint} Or name the run: "
        f"`lmtrain {command} ... hydra.run.dir=<run dir> trainer.resume=auto`; or drop "
        "trainer.resume to start a new run."
    )


def _refuse_occupied(run_dir: Path, command: str, training: bool) -> None:
    what = "a finished run (summary.json)" if (run_dir / SUMMARY_FILE).is_file() else "a run's checkpoints"
    if training:
        raise UserError(
            f"{run_dir} already holds {what}; this command would overwrite it. Continue that run "
            f"with `lmtrain resume {run_dir}` (or add trainer.resume=auto), start a new run in "
            "another hydra.run.dir, or replace it with trainer.overwrite=true (deletes the old run)."
        )
    raise UserError(
        f"{run_dir} already holds {what}; `lmtrain {command}` would overwrite it. Choose another hydra.run.dir."
    )


def _source_run(run_dir: Path, resume: str) -> Path | None:
    """The run directory whose checkpoint ``trainer.resume`` continues (None when it has no saved config)."""
    if resume == "auto":
        return run_dir
    path = Path(resume).expanduser().resolve()
    for candidate in (path, path.parent.parent, path.parent):
        if (candidate / HYDRA_DIR / "config.yaml").is_file():
            return candidate
    return None


def check_resume_config(cfg: DictConfig, source: Path) -> ConfigChanges | None:
    """Compare ``cfg`` with the saved config of ``source``; refuse changes that would break the run.

    A changed ``trainer.max_steps`` is allowed: the trainer continues the learning-rate schedule to the
    new horizon and says so (:mod:`lmtrain.training.step_plan`).
    """
    saved = read_saved_config(source)
    if saved is None:
        return None
    given = OmegaConf.to_container(cfg, resolve=False)
    if not isinstance(given, dict):
        raise TypeError(f"the config to resume with is a {type(given).__name__}, not a mapping")
    changes = compare_configs(
        saved,
        {str(key): value for key, value in given.items()},  # its keys are names
        moved_keys(FinetuneOptions, "finetune."),
        ADDED_KEYS,
    )
    if changes.refused:
        older = [key for key in changes.refused if key in ADDED_KEYS]
        hint = (
            f" The run was saved before {', '.join(older)} existed and ran as "
            f"{' '.join(f'{key}={ADDED_KEYS[key]}' for key in older)}: add that to the command, or continue it "
            f"with `lmtrain resume {source}`."
            if older
            else ""
        )
        raise UserError(
            f"cannot continue {source} with this config: it changes what the run was trained on "
            f"({ConfigChanges.describe(changes.refused)}). Only its length, evaluation / saving "
            "cadence and loggers may change when resuming; start a new run (another hydra.run.dir, "
            f"or init= its checkpoint where the command has one) to change the rest.{hint}"
        )
    shown = {k: v for k, v in changes.allowed.items() if not k.startswith(("trainer.resume", "trainer.overwrite"))}
    if shown:
        log.info("resuming %s with changed settings: %s", source, ConfigChanges.describe(shown))
    return changes


def _resume_after_elastic_restart(cfg: DictConfig) -> None:
    """Under ``torchrun --max-restarts``, restarted workers continue the run instead of starting it over."""
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    trainer = cfg.get("trainer")
    if restarts > 0 and trainer is not None and not trainer.get("resume"):
        trainer.resume = "auto"
        log.warning(
            "torchrun restarted the workers (restart %d): continuing from the newest intact checkpoint "
            "(trainer.resume=auto)",
            restarts,
        )


def _refuse_foreign(run_dir: Path, found: list[Path], legacy: bool) -> None:
    names = ", ".join(str(p) for p in found)
    hint = (
        (
            " This folder has no .lmtrain-files record of what lmtrain wrote in it (it is no run folder of this "
            "lmtrain's; if an older lmtrain made it, remove that run's files yourself)."
        )
        if legacy
        else ""
    )
    taken = "that name is" if len(found) == 1 else "those names are"
    raise UserError(
        f"this command writes {', '.join(p.name for p in found)} in {run_dir}, but {taken} taken by "
        f"what lmtrain did not write ({names}; a symbolic link is never lmtrain's). lmtrain never "
        "replaces or deletes what it did not write: move it away, or choose another hydra.run.dir. "
        f"Nothing was changed.{hint}"
    )


def _check_claim(cfg: DictConfig, command: str, run_dir: Path) -> tuple[bool, bool]:
    """Every check of the module docstring, reading only; returns (resuming, adopting an unrecorded run).

    Raises:
        UserError: see :func:`claim_run_dir`.
    """
    trainer = cfg.get("trainer")
    resume = trainer.get("resume") if trainer is not None else None
    overwrite = bool(trainer.get("overwrite", False)) if trainer is not None else False
    if resume == "auto" and not has_checkpoint(run_dir) and not _user_chose_dir():
        _refuse_unplaced_resume(run_dir, command)
    if holds_run(run_dir) and not resume and not overwrite:
        _refuse_occupied(run_dir, command, training=trainer is not None)
    resuming = bool(resume) and not overwrite
    adopting = _check_outputs(cfg, command, run_dir)
    source = _source_run(run_dir, resume) if resuming and resume is not None else None
    if source is not None:
        check_resume_config(cfg, source)
    return resuming, adopting


def _check_outputs(cfg: DictConfig, command: str, run_dir: Path) -> bool:
    """Refuse a name the command writes that is taken by an entry lmtrain did not write (or a link).

    Returns:
        Whether the command continues a run made before ``.lmtrain-files`` existed, whose files it
        then takes as lmtrain's.
    """
    trainer = cfg.get("trainer")
    resuming = trainer is not None and bool(trainer.get("resume")) and not trainer.get("overwrite", False)
    manifest = RunManifest(run_dir)
    adopting = resuming and not manifest.exists() and (run_dir / HYDRA_DIR / "config.yaml").is_file()
    found = manifest.foreign(output_names(cfg, command, run_dir))
    found = [p for p in found if p.is_symlink()] if adopting else found
    if found:
        _refuse_foreign(run_dir, found, legacy=not manifest.exists() and (run_dir / HYDRA_DIR).is_dir())
    return adopting


def _prepare(cfg: DictConfig, command: str, run_dir: Path, resuming: bool, adopting: bool) -> None:
    """Change the claimed folder: its record, an earlier run removed when replaced, the config record, the log."""
    manifest = RunManifest(run_dir)
    manifest.start()
    manifest.record(LOCK_FILE)  # locked before the record existed
    if adopting:
        names = [n for n in output_names(cfg, command, run_dir) if os.path.lexists(run_dir / n)]
        manifest.record(*names)
        log.info(
            "%s has no record of what lmtrain wrote (an older run): taking %s as this run's", run_dir, ", ".join(names)
        )
    trainer = cfg.get("trainer")
    if trainer is not None and trainer.get("overwrite", False) and holds_run(run_dir):
        log.warning("trainer.overwrite=true: deleting the earlier run in %s", run_dir)
        empty_run_dir(run_dir)
    elif trainer is not None and not trainer.get("resume") and _leftovers(run_dir):
        log.warning("%s holds an earlier attempt that saved no checkpoint; starting over", run_dir)
        empty_run_dir(run_dir)
    if manifest.owns(CHECKPOINTS_DIR):
        remove_orphan_saves(run_dir)
    write_config_record(run_dir, cfg, resuming)
    start_job_logs(run_dir)


def claim_run_dir(cfg: DictConfig, command: str, run_dir: Path) -> RunClaim:
    """Lock ``run_dir`` for ``command`` and check that it may run there; see the module docstring.

    Raises:
        UserError: the directory is locked, holds a run that would be overwritten, holds an entry lmtrain
            did not write under a name the command writes, or the config changes what a continued run
            was trained on. Nothing in the directory has changed then (but its ``.lock``).
    """
    _resume_after_elastic_restart(cfg)
    if int(os.environ.get("RANK", "0")) != 0:  # rank 0 holds the lock and writes for the whole job
        return RunClaim(run_dir, None, resuming=bool((cfg.get("trainer") or {}).get("resume")))
    _check_outputs(cfg, command, run_dir)  # before locking too: this refusal leaves not even a .lock behind
    lock = RunLock(run_dir).acquire(f"lmtrain {command}")
    try:
        resuming, adopting = _check_claim(cfg, command, run_dir)
        _prepare(cfg, command, run_dir, resuming, adopting)
    except BaseException:
        lock.release()
        raise
    return RunClaim(run_dir, lock, resuming)
