"""Metric sinks besides ``metrics.jsonl``: TensorBoard, Weights & Biases and MLflow.

``metrics.jsonl`` (written by :class:`lmtrain.run_folder.layout.RunDir`) is always on: it is the run
directory contract that ``lmtrain runs`` and ``lmtrain plot`` read. ``trainer.loggers`` adds
more trackers; each gets the run's config when it opens, the same ``(step, metrics)`` events as
``metrics.jsonl``, and is closed with ``finish()`` when training ends (also on Ctrl-C). The
command's summary, assembled after training, reaches them through :func:`send_summary`, which
reopens each tracker's run and calls its ``log_summary``.

    trainer.loggers=[jsonl,tensorboard]   # event files in <run dir>/tb/ (tensorboard --logdir outputs)
    trainer.loggers=[jsonl,wandb]         # Weights & Biases; WANDB_MODE=offline / WANDB_PROJECT honoured
    trainer.loggers=[jsonl,mlflow]        # MLflow; MLFLOW_TRACKING_URI honoured, else the local file ./mlflow.db

A resumed run continues the same curves: TensorBoard drops the events the previous attempt
wrote after the resume step (``purge_step``); W&B and MLflow continue the run with the same id.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from lmtrain.errors import UserError
from lmtrain.files.atomic import make_dirs, write_text

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tb"
WANDB_ID_FILE = "wandb_run_id"  # inside <run dir>/wandb/, so a resumed run continues the same W&B run
MLFLOW_ID_FILE = "mlflow_run_id"  # in the run directory, so a resumed run continues the same MLflow run
# MLflow's own default store, a local SQLite file beside outputs/ (`mlflow ui` run there shows it);
# MLflow 3 no longer opens new ./mlruns folder stores without MLFLOW_ALLOW_FILE_STORE=true
MLFLOW_DEFAULT_STORE = "mlflow.db"

# logger name -> (module it needs, the pip extra that installs it); jsonl needs nothing
LOGGERS: dict[str, tuple[str | None, str | None]] = {
    "jsonl": (None, None),
    "tensorboard": ("torch.utils.tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}


class MetricLogger(Protocol):
    """What the Trainer calls on every extra sink."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record the metrics of one logging or evaluation event."""

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Record the run's final summary (numbers as metrics, the whole as a document)."""

    def finish(self) -> None:
        """Flush and close (called once, when training ends)."""


def _summary_json(summary: dict[str, Any]) -> str:
    """The summary as JSON text, without the config (trackers have it already)."""
    return json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2, default=str)


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

    def __init__(self, log_dir: Path, start_step: int = 0, config: dict[str, Any] | None = None):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step discards events with step >= purge_step; the resume step itself was logged
        # (and kept in metrics.jsonl) by the previous attempt, so purging starts one step later.
        purge_step = start_step + 1 if start_step > 0 else None
        self.writer = SummaryWriter(log_dir=str(make_dirs(log_dir)), purge_step=purge_step)
        if config:  # TensorBoard's text tab renders Markdown: a code block keeps the layout
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", start_step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Add every numeric metric as a scalar at ``step``."""
        for key, value in _scalars(metrics).items():
            self.writer.add_scalar(key, value, step)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The summary's numbers as ``summary/<name>`` scalars at the last step, and the whole as text."""
        step = int(summary.get("steps") or 0)
        for key, value in _scalars({k: v for k, v in summary.items() if k != "config"}).items():
            self.writer.add_scalar(f"summary/{key}", value, step)
        self.writer.add_text("summary", "```\n" + _summary_json(summary) + "\n```", step)

    def finish(self) -> None:
        """Flush the event file and close the writer."""
        self.writer.flush()
        self.writer.close()


def _wandb_run_id(run_dir: Path, new_id: str) -> str:
    """The W&B run id of ``run_dir``: read from an earlier attempt, or ``new_id`` (then saved)."""
    path = run_dir / "wandb" / WANDB_ID_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    make_dirs(path.parent)
    write_text(path, new_id + "\n")
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
        self.run = wandb.init(name=run_name(Path(run_dir)), dir=str(run_dir), config=config, id=run_id, resume="allow")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Log the numeric metrics at ``step``."""
        self.run.log(_scalars(metrics), step=step)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The summary's numbers into the W&B run summary (what its run table shows)."""
        self.run.summary.update(_scalars({k: v for k, v in summary.items() if k != "config"}))

    def finish(self) -> None:
        """Close the W&B run (uploads it unless offline)."""
        self.run.finish()


def _flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optim": {"lr": 0.001}}`` as ``{"optim.lr": "0.001"}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:500]  # longer values are cut rather than refused
    return flat


class MlflowLogger:
    """Metrics to MLflow, through ``MlflowClient`` (no global active run).

    The store is ``MLFLOW_TRACKING_URI`` when set, else the local file ``./mlflow.db`` (SQLite, with
    artifacts in ``./mlartifacts``; ``mlflow ui`` in that folder shows it); the experiment is
    ``MLFLOW_EXPERIMENT_NAME`` or ``lmtrain``. The run id is kept in ``<run dir>/mlflow_run_id`` so a
    resumed run continues it.

    Args:
        run_dir: the run directory; its name becomes the MLflow run name.
        config: the resolved run config: flat params (on the first attempt) and ``config.json``.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        from mlflow.tracking import MlflowClient

        run_dir = Path(run_dir)
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(MLFLOW_DEFAULT_STORE).resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        id_file = run_dir / MLFLOW_ID_FILE
        if id_file.is_file():
            self.run_id = id_file.read_text(encoding="utf-8").strip()
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "lmtrain"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            self.run_id = self.client.create_run(experiment_id, run_name=run_name(run_dir)).info.run_id
            write_text(id_file, self.run_id + "\n")
            # params cannot change once logged; a resumed run's changes are in its config.json
            self._log_params(_flat_params(config))
        self.client.log_dict(self.run_id, config, "config.json")

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def _log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Log the numeric metrics at ``step``."""
        values = _scalars(metrics)
        if values:
            self._log_metrics(step, values)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The summary's numbers as ``summary/<name>`` metrics and the whole as ``summary.json``."""
        values = _scalars({k: v for k, v in summary.items() if k != "config"})
        if values:
            self._log_metrics(int(summary.get("steps") or 0), {f"summary/{k}": v for k, v in values.items()})
        self.client.log_text(self.run_id, _summary_json(summary), "summary.json")

    def finish(self) -> None:
        """Mark the MLflow run finished."""
        self.client.set_terminated(self.run_id)


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
            raise UserError(
                f"trainer.loggers={name} needs the '{extra}' package: "
                f"pip install 'lmtrain[{extra}]' (or remove {name} from trainer.loggers)."
            ) from None


def open_loggers(
    names: Sequence[str], run_dir: Path, config: dict[str, Any], start_step: int = 0
) -> list[MetricLogger]:
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
            loggers.append(TensorBoardLogger(run_dir / TENSORBOARD_DIR, start_step, config))
        elif name == "wandb":
            loggers.append(WandbLogger(run_dir, config))
        elif name == "mlflow":
            loggers.append(MlflowLogger(run_dir, config))
    if loggers:
        log.info("logging metrics to %s", ", ".join(n for n in dict.fromkeys(names)))
    return loggers


def send_summary(names: Sequence[str], run_dir: Path, summary: dict[str, Any]) -> None:
    """Give the finished run's ``summary`` to the trackers in ``names``, reopening their runs.

    The Trainer closes its trackers when training ends, before the command has assembled its
    summary (baselines, samples, wall time), so each tracker's run is reopened here: TensorBoard
    writes into the same folder, W&B and MLflow continue the run with the saved id. A tracker that
    fails only gets a warning: the run is done and its summary.json is written.

    Args:
        names: ``trainer.loggers``.
        run_dir: the run directory.
        summary: the run summary (its ``config`` is the tracker's run config).
    """
    config, run_dir = summary.get("config") or {}, Path(run_dir)
    for name in dict.fromkeys(names):
        if name == "jsonl":
            continue
        try:
            # a new TensorBoard writer without purge_step keeps the curves written during training
            tracker = (
                TensorBoardLogger(run_dir / TENSORBOARD_DIR)
                if name == "tensorboard"
                else open_loggers([name], run_dir, config)[0]
            )
            tracker.log_summary(summary)
            tracker.finish()
        except Exception as error:  # noqa: BLE001 - a tracker problem must not fail a finished run
            log.warning("could not send the summary to %s: %s", name, error)
