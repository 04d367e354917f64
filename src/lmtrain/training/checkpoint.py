"""Checkpoints that resume exactly and never leave a corrupt `last`.

A checkpoint is a directory `checkpoints/step-N/` with
  model.safetensors   weights (tied matrices stored once)
  model.json          how to rebuild the model: backbone spec, heads, tokenizer roles, objective
  tokenizer.json      the tokenizer, so the checkpoint stands alone
  trainer_state.pt    optimizer, scheduler, scaler, RNG states, step and data position
(the names and the reading side live in :mod:`lmtrain.files.checkpoints`; a sharded checkpoint keeps
its model and optimizer in ``sharded/`` instead, see :mod:`lmtrain.training.sharded_checkpoint`).
It is written under a temporary name and renamed into place; `checkpoints/last` is a symlink
switched atomically to the newest complete checkpoint, so a kill at any moment leaves the
previous `last` intact.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file, save_model
from torch import nn

from lmtrain.errors import UserError
from lmtrain.files.atomic import (
    atomic_directory,
    follow_umask,
    is_link,
    make_dirs,
    remove_entry,
    write_text,
    write_with,
)
from lmtrain.files.checkpoints import (
    BEST,
    LAST,
    MODEL_META,
    SHARDED,
    TOKENIZER,
    TRAINER_STATE,
    WEIGHTS,
    is_checkpoint,
    is_sharded,
    resolve_checkpoint,
)
from lmtrain.files.sharded import sharded_problem
from lmtrain.files.tensors import read_torch_tensors, safetensors_problem, torch_file_problem

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """Every random generator training draws from: Python, torch's CPU one and, where this process has
    started CUDA, its current device's (never every visible GPU's: that would open a context on each)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (the CUDA generator on the current device)."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or not torch.cuda.is_available():
        return
    if isinstance(cuda, (list, tuple)):  # an older checkpoint saved every visible device's generator
        index = torch.cuda.current_device()
        if index >= len(cuda):
            log.warning("the checkpoint holds no CUDA generator for device %d; its dropout stream starts anew", index)
            return
        cuda = cuda[index]
    torch.cuda.set_rng_state(cuda)


def save_checkpoint(
    checkpoints_dir: Path,
    step: int,
    model: nn.Module,
    model_meta: dict[str, Any],
    trainer_state: dict[str, Any] | None,
    tokenizer_file: Path | None,
    weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``step-<step>`` atomically and point ``last`` at it.

    Args:
        checkpoints_dir: the run's ``checkpoints/`` directory.
        step: optimizer steps taken.
        model: the module whose ``state_dict`` is saved.
        model_meta: JSON description to rebuild the model (``model.json``).
        trainer_state: optimizer / scheduler / RNG / data position, or None for weights only.
        tokenizer_file: a ``tokenizer.json`` to copy in, or None.
        weights: the full weights to save instead of ``model.state_dict()`` (gathered from
            sharded parameters; tied duplicates already dropped).
    Returns:
        The checkpoint directory.
    """
    final = checkpoints_dir / f"step-{step}"
    try:
        with atomic_directory(final) as tmp:
            if weights is None:
                save_model(model, str(tmp / WEIGHTS))
            else:
                save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
            write_small_files(tmp, step, model_meta, trainer_state, tokenizer_file)
    except (OSError, RuntimeError, SafetensorError) as error:
        if not out_of_space(error):
            raise
        raise save_failed(checkpoints_dir, final, model, error) from None
    point_last(checkpoints_dir, final)
    return final


def write_small_files(
    folder: Path,
    step: int,
    model_meta: dict[str, Any],
    trainer_state: dict[str, Any] | None,
    tokenizer_file: Path | None,
) -> None:
    """Write a checkpoint's ``model.json``, ``trainer_state.pt`` (if any) and copy of ``tokenizer.json`` (if any).

    Each file is written whole under a temporary name and renamed, never through a link (:mod:`lmtrain.files.atomic`).
    """
    write_text(folder / MODEL_META, json.dumps({**model_meta, "step": step}, indent=2))
    if tokenizer_file is not None:
        write_with(folder / TOKENIZER, lambda tmp: shutil.copyfile(tokenizer_file, tmp))
    if trainer_state is not None:
        write_with(folder / TRAINER_STATE, lambda tmp: torch.save(trainer_state, tmp))


def write_weights_folder(out: Path, model: nn.Module, model_meta: dict[str, Any], tokenizer_file: Path | None) -> Path:
    """Write ``model``'s full weights into ``out`` as a weights-only checkpoint every lmtrain command loads.

    ``out`` holds ``model.safetensors``, ``model.json`` and (if given) ``tokenizer.json`` afterwards. It is
    meant to be a new folder: `lmtrain export` passes the temporary folder it swaps in whole (see
    :mod:`lmtrain.runs.export_folder`). Returns ``out``.
    """
    make_dirs(out)
    write_with(out / WEIGHTS, lambda tmp: save_model(model, str(tmp)))
    follow_umask(out / WEIGHTS)  # safetensors writes 0600: teammates could not load it
    write_small_files(out, model_meta.get("step", 0), model_meta, None, tokenizer_file)
    return out


# what a write that ran out of room says: OSError's errno, or the text of torch's and safetensors' writers
_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_SPACE_WORDS = ("iostream error", "no space", "file too large", "quota", "failed to write", "unexpected pos")


def out_of_space(error: BaseException) -> bool:
    """Whether ``error`` says a write ran out of room (a full disk, a quota, a file-size limit)."""
    if isinstance(error, OSError) and error.errno in _SPACE_ERRNOS:
        return True
    return any(word in str(error).lower() for word in _SPACE_WORDS)


def save_failed(checkpoints_dir: Path, final: Path, model: nn.Module, error: BaseException) -> UserError:
    """The error for a checkpoint that could not be written: how much room it needs, what is intact."""
    mib = 1 << 20
    previous = checkpoints_dir / LAST
    needed = (
        sum(f.stat().st_size for f in previous.resolve().rglob("*") if f.is_file())
        if is_checkpoint(previous)
        else 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    )  # weights + Adam's 2 moments
    free = shutil.disk_usage(checkpoints_dir).free
    kept = (
        f"The previous checkpoint {previous.resolve()} is intact, and `lmtrain resume {checkpoints_dir.parent}` "
        "continues from it once there is room"
        if is_checkpoint(previous)
        else "No checkpoint of this run had been written yet; start it again once there is room"
    )
    return UserError(
        f"could not write checkpoint {final.name} in {checkpoints_dir} ({' '.join(str(error).split())}): "
        f"the disk or a file-size limit is full. A checkpoint needs about {needed / mib:.1f} MiB; "
        f"{free / mib:.1f} MiB are free there. {kept} (lower trainer.keep_last to keep fewer "
        "checkpoints)."
    )


def point_last(checkpoints_dir: Path, checkpoint: Path) -> None:
    """Atomically point ``checkpoints/last`` at ``checkpoint``."""
    _point(checkpoints_dir, LAST, checkpoint)


def _point(checkpoints_dir: Path, name: str, target: Path) -> None:
    """Atomically make ``checkpoints_dir/name`` a relative symlink to ``target``."""
    link_tmp = checkpoints_dir / f".{name}.tmp"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(target.name, link_tmp)
    os.replace(link_tmp, checkpoints_dir / name)


def mark_best(checkpoints_dir: Path, checkpoint: Path) -> None:
    """Point ``checkpoints/best`` at ``checkpoint`` (kept by pruning while it is the best)."""
    _point(checkpoints_dir, BEST, checkpoint)


def prune_checkpoints(checkpoints_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step-N checkpoints (never those ``last`` or ``best`` name)."""
    if keep_last <= 0:
        return
    # a link named step-N is no checkpoint lmtrain wrote: never followed, never deleted
    steps = sorted(
        (p for p in checkpoints_dir.glob("step-*") if p.is_dir() and not is_link(p) and p.name[5:].isdigit()),
        key=lambda p: int(p.name[5:]),
    )
    protected = {(checkpoints_dir / name).resolve() for name in (LAST, BEST) if (checkpoints_dir / name).exists()}
    for path in steps[:-keep_last]:
        if path.resolve() not in protected:
            try:
                remove_entry(path)
            except OSError as error:  # a checkpoint that cannot be removed costs room, not the run
                log.warning("could not remove the old checkpoint %s: %s", path, error)


def checkpoint_problem(checkpoint: Path, need_state: bool = True) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (a missing or damaged file), or None if it looks intact.

    Cheap: reads the safetensors header (or the shards' metadata and sizes), the JSON and the trainer
    state's zip directory, which a truncated file (a kill during a copy, a full disk) does not survive.
    """
    weights = SHARDED if is_sharded(checkpoint) else WEIGHTS
    for name in (MODEL_META, *((TRAINER_STATE,) if need_state else ())):
        if not (checkpoint / name).is_file():
            return f"{name} is missing"
    if not (checkpoint / weights).exists():
        return f"{weights} is missing"
    problem = sharded_problem(checkpoint / SHARDED) if weights == SHARDED else safetensors_problem(checkpoint / WEIGHTS)
    if problem:
        return f"{weights}: {problem}"
    try:
        json.loads((checkpoint / MODEL_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"{MODEL_META}: {error}"
    problem = torch_file_problem(checkpoint / TRAINER_STATE) if need_state else None
    return f"{TRAINER_STATE}: {problem}" if problem else None


def _newest_first(checkpoints_dir: Path) -> list[Path]:
    """``last``'s target, then every ``step-N`` from the newest step down."""
    steps = sorted(
        (p for p in checkpoints_dir.glob("step-*") if p.is_dir() and p.name[5:].isdigit()),
        key=lambda p: int(p.name[5:]),
        reverse=True,
    )
    last = checkpoints_dir / LAST
    first = [last.resolve()] if last.is_symlink() and last.exists() else []
    return first + [p.resolve() for p in steps if p.resolve() not in first]


def newest_intact_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest checkpoint of a run that can be resumed from; warns about each damaged one skipped."""
    skipped: list[tuple[Path, str]] = []
    for candidate in _newest_first(checkpoints_dir):
        problem = checkpoint_problem(candidate)
        if problem is None:
            for bad, why in skipped:
                log.warning("trainer.resume=auto: %s is damaged (%s); resuming from %s instead", bad, why, candidate)
            return candidate
        skipped.append((candidate, problem))
    if skipped:
        raise UserError(
            f"trainer.resume=auto: no intact checkpoint in {checkpoints_dir} "
            f"({'; '.join(f'{p.name}: {why}' for p, why in skipped)}). Start the run again with "
            "trainer.overwrite=true, or restore the checkpoints from a copy."
        )
    return None


def resume_checkpoint(resume: str | None, checkpoints_dir: Path) -> Path | None:
    """The checkpoint ``trainer.resume`` names: None, ``auto`` (this run's newest intact one, if any) or a path."""
    if not resume:
        return None
    if resume == "auto":
        found = newest_intact_checkpoint(checkpoints_dir)
        if found is None:
            log.info("trainer.resume=auto: no checkpoint in %s yet, starting from scratch", checkpoints_dir)
        return found
    found = resolve_checkpoint(resume, key="trainer.resume")
    problem = checkpoint_problem(found)
    if problem:
        raise UserError(
            f"trainer.resume={resume}: {found} cannot be resumed from ({problem}). "
            "Name another checkpoint (an older checkpoints/step-N of the run)."
        )
    return found


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The ``trainer_state.pt`` of a checkpoint; UserError if it has none, is damaged or is not plain tensors."""
    path = checkpoint / TRAINER_STATE
    if not path.exists():
        raise UserError(
            f"{checkpoint} holds weights only (no {TRAINER_STATE}), so training cannot resume "
            "from it exactly; start a new run from its weights instead."
        )
    return read_torch_tensors(path)
