"""Metric sinks besides ``metrics.jsonl``: TensorBoard and Weights & Biases.

``metrics.jsonl`` (written by :class:`lmtrain.run_dir.RunDir`) is always on: it is the run
directory contract that ``lmtrain runs`` and ``lmtrain plot`` read. ``trainer.loggers`` adds
more sinks; each receives the same ``(step, metrics)`` events as ``metrics.jsonl`` and is closed
with ``finish()`` when training ends (also on Ctrl-C).

    trainer.loggers=[jsonl,tensorboard]   # event files in <run dir>/tb/ (tensorboard --logdir outputs)
    trainer.loggers=[jsonl,wandb]         # Weights & Biases; WANDB_MODE=offline / WANDB_PROJECT honoured

A resumed run continues the same curves: TensorBoard drops the events the previous attempt
wrote after the resume step (``purge_step``), and W&B resumes the run with the same id.
"""

from __future__ import annotations

import importlib
import logging
import math
import uuid
from pathlib import Path
from typing import Any, Protocol, Sequence

from lmtrain.errors import UserError

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tb"
WANDB_ID_FILE = "wandb_run_id"  # inside <run dir>/wandb/, so a resumed run continues the same W&B run

# logger name -> (module it needs, the pip extra that installs it); jsonl needs nothing
LOGGERS: dict[str, tuple[str | None, str | None]] = {
    "jsonl": (None, None),
    "tensorboard": ("torch.utils.tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}


class MetricLogger(Protocol):
    """What the Trainer calls on every extra sink."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record the metrics of one logging or evaluation event."""

    def finish(self) -> None:
        """Flush and close (called once, when training ends)."""


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of ``metrics`` as floats (strings and NaN are skipped)."""
    values = {}
    for key, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values[key] = float(value)
    return values


class TensorBoardLogger:
    """Scalars to TensorBoard event files through ``torch.utils.tensorboard.SummaryWriter``.

    Args:
        log_dir: where event files go (``<run dir>/tb``).
        start_step: the step a resumed run continues from (0 for a fresh run). Events of an
            earlier attempt after this step are purged, so curves have each step once.
    """

    def __init__(self, log_dir: Path, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step discards events with step >= purge_step; the resume step itself was logged
        # (and kept in metrics.jsonl) by the previous attempt, so purging starts one step later.
        purge_step = start_step + 1 if start_step > 0 else None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Add every numeric metric as a scalar at ``step``."""
        for key, value in _scalars(metrics).items():
            self.writer.add_scalar(key, value, step)

    def finish(self) -> None:
        """Flush the event file and close the writer."""
        self.writer.flush()
        self.writer.close()


def _wandb_run_id(run_dir: Path, new_id: str) -> str:
    """The W&B run id of ``run_dir``: read from an earlier attempt, or ``new_id`` (then saved)."""
    path = run_dir / "wandb" / WANDB_ID_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_id + "\n", encoding="utf-8")
    return new_id


def run_name(run_dir: Path) -> str:
    """A readable run name: the run directory's name (``<sweep>-<job>`` for a sweep job's numbered dir)."""
    run_dir = Path(run_dir)
    if run_dir.name.isdigit() and run_dir.parent.name:
        return f"{run_dir.parent.name}-{run_dir.name}"
    return run_dir.name


class WandbLogger:
    """Metrics to Weights & Biases.

    The environment configures W&B as usual (``WANDB_MODE=offline``, ``WANDB_PROJECT``,
    ``WANDB_ENTITY``); files go under ``<run dir>/wandb``.

    Args:
        run_dir: the run directory; its name becomes the W&B run name.
        config: the resolved run config, stored as the W&B run config.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        run_id = _wandb_run_id(Path(run_dir), uuid.uuid4().hex[:12])
        # resume="allow": the same id continues the run after `trainer.resume=auto`
        self.run = wandb.init(name=run_name(Path(run_dir)), dir=str(run_dir), config=config, id=run_id,
                              resume="allow")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Log the numeric metrics at ``step``."""
        self.run.log(_scalars(metrics), step=step)

    def finish(self) -> None:
        """Close the W&B run (uploads it unless offline)."""
        self.run.finish()


def require_loggers(names: Sequence[str]) -> None:
    """Check that every logger in ``names`` exists and its package is installed.

    Raises:
        UserError: for an unknown name, or a missing package (naming the extra to install).
    """
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"trainer.loggers: unknown logger '{name}'; choose from {', '.join(LOGGERS)}.")
        module, extra = LOGGERS[name]
        if module is None:
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(f"trainer.loggers={name} needs the '{extra}' package: "
                            f"pip install 'lmtrain[{extra}]' (or remove {name} from trainer.loggers).") from None


def open_loggers(names: Sequence[str], run_dir: Path, config: dict[str, Any],
                 start_step: int = 0) -> list[MetricLogger]:
    """The extra metric sinks named in ``trainer.loggers`` (``jsonl`` is the run directory itself).

    Args:
        names: logger names, e.g. ``["jsonl", "tensorboard"]``.
        run_dir: the run directory (TensorBoard writes to ``<run_dir>/tb``).
        config: the resolved run config (W&B's run config).
        start_step: step a resumed run continues from, 0 for a fresh run.
    Returns:
        The opened loggers, in the order named.
    """
    require_loggers(names)
    run_dir = Path(run_dir)
    loggers: list[MetricLogger] = []
    for name in dict.fromkeys(names):  # each once, in order
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(run_dir / TENSORBOARD_DIR, start_step))
        elif name == "wandb":
            loggers.append(WandbLogger(run_dir, config))
    if loggers:
        log.info("logging metrics to %s", ", ".join(n for n in dict.fromkeys(names)))
    return loggers
