"""One run directory read back: what ran, with which overrides, how far it got, how well it did.

Status of a run: what its ``status.json`` says (see :mod:`lmtrain.run_status`): finished, failed
(with the error), interrupted (at a step), or running while its process lives. A run of an older
version, or one killed outright, is judged from its files:
    finished      ``summary.json`` exists
    failed        no summary, and the Hydra job log (``<job>.log``) holds an error
    running       no summary, and its metrics or log changed in the last ``running_window`` seconds
    interrupted   no summary, and ``checkpoints/last`` holds a trainer state: ``trainer.resume=auto`` continues it
    failed        no summary and no checkpoint to resume from
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from lmtrain.run_dir import CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE, lower_is_better, read_metrics
from lmtrain.run_status import process_alive, read_status
from lmtrain.runs.series import metric_series, train_clock

log = logging.getLogger(__name__)

RUNNING_WINDOW_S = 120.0  # a run whose files changed this recently is taken to be alive
TRAINER_STATE = "trainer_state.pt"  # the file that makes a checkpoint resumable
# commands that train (their runs are compared); the others use or write out a model
TRAINING_COMMANDS = ("pretrain", "finetune", "embed")
_ERROR_MARKERS = ("][ERROR]", "][CRITICAL]", "Traceback (most recent call last)")


@dataclass
class RunRecord:
    """What ``lmtrain runs`` knows about one run directory (``metric`` is an eval name without ``eval/``)."""

    path: Path
    status: str
    detail: str | None = None  # why it failed, or where it was interrupted
    command: str | None = None
    model: str | None = None
    task: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    steps: int | None = None
    wall_seconds: float | None = None
    tokens_per_s: float | None = None
    metric: str | None = None
    final: float | None = None
    best: float | None = None
    best_step: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def kind(self) -> str:
        """``training`` for runs of :data:`TRAINING_COMMANDS`, else ``other`` (generate, evaluate, export ...)."""
        return "training" if self.command in TRAINING_COMMANDS or self.command is None else "other"

    @property
    def ranking_value(self) -> float | None:
        """The value runs are ranked by: the best evaluation, else the final one."""
        return self.best if self.best is not None else self.final


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def read_overrides(run_dir: Path) -> dict[str, str]:
    """``key -> value`` of the command-line overrides in ``.hydra/overrides.yaml`` (``+`` prefixes dropped)."""
    items = _read_yaml(run_dir / ".hydra" / "overrides.yaml") or []
    overrides = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if sep:
            overrides[key.lstrip("+~")] = value
    return overrides


def log_has_error(run_dir: Path) -> bool:
    """Whether a Hydra job log (``*.log`` in the run directory) records an error or a traceback."""
    for path in run_dir.glob("*.log"):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(marker in text for marker in _ERROR_MARKERS):
            return True
    return False


def status_detail(record: dict[str, Any]) -> str | None:
    """A few words on how a run ended, from its ``status.json`` record."""
    if record["state"] == "failed":
        return " ".join(str(record.get("error") or "").split()) or None
    if record["state"] == "interrupted":
        by = f"by {record['signal']}" if record.get("signal") else ""
        at = f"at step {record['step']}" if record.get("step") is not None else "before its first checkpoint"
        return f"{by} {at}".strip()
    return None


def recorded_status(run_dir: Path) -> tuple[str, str | None] | None:
    """Status and detail from ``status.json``; None without one, or for a ``running`` whose process is gone."""
    record = read_status(run_dir)
    if record is None:
        return None
    if record["state"] == "running" and process_alive(record) is not True:
        return None  # killed outright, or on another host: judge by the files
    return record["state"], status_detail(record)


def run_status(run_dir: Path, now: float | None = None, running_window: float = RUNNING_WINDOW_S) -> str:
    """``finished`` | ``running`` | ``interrupted`` | ``failed`` (see the module docstring)."""
    recorded = recorded_status(run_dir)
    if recorded is not None:
        return recorded[0]
    if (run_dir / SUMMARY_FILE).is_file():
        return "finished"
    if log_has_error(run_dir):
        return "failed"
    record = read_status(run_dir)
    gone = record is not None and record["state"] == "running" and process_alive(record) is False
    now = time.time() if now is None else now
    live = [] if gone else [run_dir / METRICS_FILE, run_dir / ".hydra" / "config.yaml", *run_dir.glob("*.log")]
    if any(p.is_file() and now - p.stat().st_mtime < running_window for p in live):
        return "running"
    if (run_dir / CHECKPOINTS_DIR / "last" / TRAINER_STATE).is_file():
        return "interrupted"
    return "failed"


def _job_name(run_dir: Path) -> str | None:
    hydra = _read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    name = hydra.get("hydra", {}).get("job", {}).get("name") if isinstance(hydra, dict) else None
    return name if isinstance(name, str) else None


def _checkpointed_metric(run_dir: Path) -> str | None:
    """The ``main_metric`` the trainer wrote into the run's newest checkpoint's ``model.json``."""
    metas = sorted((run_dir / CHECKPOINTS_DIR).glob("*/model.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in metas:
        try:
            metric = json.loads(path.read_text(encoding="utf-8")).get("main_metric")
        except (OSError, ValueError):
            continue
        if metric:
            return str(metric)
    return None


def main_metric(summary: dict[str, Any], config: dict[str, Any], events: list[dict[str, Any]],
                run_dir: Path | None = None) -> str | None:
    """The metric that ranks a run: summary's ``best/<m>``, ``trainer.monitor``, the one its checkpoints record."""
    best = next((k[len("best/"):] for k in summary if k.startswith("best/")), None)
    if best:
        return best
    trainer = config.get("trainer") or {}
    if trainer.get("monitor"):
        return str(trainer["monitor"])
    recorded = _checkpointed_metric(run_dir) if run_dir is not None else None
    if recorded:
        return recorded
    logged = [k[len("eval/"):] for e in events for k in e if k.startswith("eval/")]
    return logged[0] if logged else None


def _metric_values(record: RunRecord) -> None:
    """Fill final / best / best_step from the summary, else from the logged evaluations."""
    if record.metric is None:
        return
    key, summary = f"eval/{record.metric}", record.summary
    steps, values = metric_series(record.events, key)
    if key in summary:
        record.final = summary[key]
    elif len(values):
        record.final = float(values[-1])
    if f"best/{record.metric}" in summary:
        record.best, record.best_step = summary[f"best/{record.metric}"], summary.get("best_step")
    elif len(values):
        i = int(np.argmin(values) if lower_is_better(record.metric) else np.argmax(values))
        record.best, record.best_step = float(values[i]), int(steps[i])


def _progress(record: RunRecord) -> None:
    """Fill steps, wall time and tokens/s from the summary, else estimate them from the files."""
    summary, path = record.summary, record.path
    steps = [int(e["step"]) for e in record.events if "step" in e]
    record.steps = summary.get("steps", max(steps) if steps else None)
    record.wall_seconds = summary.get("wall_seconds")
    if record.wall_seconds is None and (path / METRICS_FILE).is_file() and (path / ".hydra").is_dir():
        record.wall_seconds = round((path / METRICS_FILE).stat().st_mtime - (path / ".hydra").stat().st_mtime, 2)
    record.tokens_per_s = summary.get("tokens_per_s")
    if record.tokens_per_s is None:
        _, tokens, seconds = train_clock(record.events)
        if seconds[-1] > 0:
            record.tokens_per_s = float(tokens[-1] / seconds[-1])


def load_run(run_dir: str | Path, now: float | None = None, running_window: float = RUNNING_WINDOW_S) -> RunRecord:
    """Read one run directory (nothing in it is required; missing parts stay None).

    Args:
        run_dir: the run directory.
        now: the time to judge ``running`` against (default: now).
        running_window: seconds since the last write for a run without a summary to count as running.
    """
    path = Path(run_dir)
    summary = {}
    if (path / SUMMARY_FILE).is_file():
        try:
            summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            log.warning("%s: unreadable %s", path, SUMMARY_FILE)
    config = summary.get("config") or _read_yaml(path / ".hydra" / "config.yaml") or {}
    try:
        events = read_metrics(path)
    except (OSError, json.JSONDecodeError):  # a line cut by a kill: read what parses
        events = _read_events_leniently(path / METRICS_FILE)
    recorded = recorded_status(path)
    status, detail = recorded if recorded is not None else (run_status(path, now, running_window), None)
    record = RunRecord(path=path, status=status, detail=detail, summary=summary,
                       config=config if isinstance(config, dict) else {}, events=events,
                       overrides=read_overrides(path))
    record.command = (summary.get("command") or (read_status(path) or {}).get("command") or _job_name(path)
                      or ("finetune" if "task" in record.config else None))
    record.model = summary.get("model") or (record.config.get("model") or {}).get("name")
    record.task = summary.get("task") or (record.config.get("task") or {}).get("name")
    record.metric = main_metric(summary, record.config, events, path)
    _metric_values(record)
    _progress(record)
    return record


def _read_events_leniently(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and "step" in event:
            events.append(event)
    return events


def load_runs(run_dirs: Iterable[str | Path], now: float | None = None,
              running_window: float = RUNNING_WINDOW_S) -> list[RunRecord]:
    """:func:`load_run` for each directory, judged against the same ``now``."""
    now = time.time() if now is None else now
    return [load_run(p, now, running_window) for p in run_dirs]

