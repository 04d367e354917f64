"""One run directory read back: what ran, with which overrides, how far it got, how well it did.

Status of a run: what its ``status.json`` says (see :mod:`lmtrain.run_folder.status`): finished, failed
(with the error), interrupted (at a step), or running while its process lives. A run of an older
version, or one killed outright, is judged from its files:
    finished      ``summary.json`` exists
    failed        no summary, and the Hydra job log (``<job>.log``) holds an error
    running       no summary, and its metrics or log changed in the last ``running_window`` seconds
    interrupted   no summary, and ``checkpoints/last`` holds a trainer state: ``trainer.resume=auto`` continues it
    failed        no summary and no checkpoint to resume from
A run folder is data that may be damaged or crafted: a file of the contract that cannot be read
as what it should be makes the run ``unreadable``, with the reason; a value of the wrong type
counts as missing. Reading never raises for what a folder holds, so one bad folder never stops
a listing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmtrain.run_folder.layout import CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE, lower_is_better
from lmtrain.run_folder.status import read_status
from lmtrain.runs.metrics_log import EventLog, MetricsDigest, digest, is_number, is_step
from lmtrain.runs.run_files import UnreadableFile, read_document
from lmtrain.runs.run_state import RUNNING_WINDOW_S, judge_status, run_status

log = logging.getLogger(__name__)
__all__ = ["RUNNING_WINDOW_S", "RunRecord", "load_run", "load_runs", "run_status"]

UNREADABLE = "unreadable"
# commands that train (their runs are compared); the others use or write out a model
TRAINING_COMMANDS = ("pretrain", "finetune", "embed")
CONFIG_FILE, OVERRIDES_FILE, HYDRA_FILE = ".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml"


@dataclass
class RunRecord:
    """What ``lmtrain runs`` knows about one run directory (``metric`` is an eval name without ``eval/``).

    ``events`` reads ``metrics.jsonl`` anew on each pass (never all of it in memory); ``problems``
    names the files that could not be read (then ``status`` is ``unreadable``).
    """

    path: Path
    status: str
    detail: str | None = None  # why it failed, where it was interrupted, or why it is unreadable
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
    events: EventLog = field(init=False, repr=False)  # the run's metrics.jsonl
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.events = EventLog(self.path / METRICS_FILE)

    @property
    def kind(self) -> str:
        """``training`` for runs of :data:`TRAINING_COMMANDS`, else ``other`` (generate, evaluate, export ...)."""
        return "training" if self.command in TRAINING_COMMANDS or self.command is None else "other"

    @property
    def ranking_value(self) -> float | None:
        """The value runs are ranked by: the best evaluation, else the final one."""
        return self.best if self.best is not None else self.final


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _node(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _read(run_dir: Path, relative: str, expected: type, kind: str, problems: list[str]) -> Any:
    """``read_document``, with a problem noted (and None returned) instead of an exception."""
    try:
        return read_document(run_dir, relative, expected, kind)
    except UnreadableFile as error:
        problems.append(error.reason)
        return None


def read_overrides(run_dir: Path, problems: list[str] | None = None) -> dict[str, str]:
    """``key -> value`` of the command-line overrides in ``.hydra/overrides.yaml`` (``+`` prefixes dropped)."""
    problems = [] if problems is None else problems
    items = _read(run_dir, OVERRIDES_FILE, list, "yaml", problems) or []
    if not all(isinstance(item, str) for item in items):
        problems.append(f"{OVERRIDES_FILE} is not a list of key=value strings")
        return {}
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep:
            overrides[key.lstrip("+~")] = value
    return overrides


def _job_name(run_dir: Path, problems: list[str]) -> str | None:
    hydra = _read(run_dir, HYDRA_FILE, dict, "yaml", problems) or {}
    return _text(_node(_node(hydra, "hydra"), "job").get("name"))


def _checkpointed_metric(run_dir: Path) -> str | None:
    """The ``main_metric`` the trainer wrote into the run's newest checkpoint's ``model.json``."""

    def newest_first(path: Path) -> float:
        try:
            return -path.stat().st_mtime
        except OSError:
            return 0.0

    for path in sorted((run_dir / CHECKPOINTS_DIR).glob("*/model.json"), key=newest_first):
        try:
            meta = read_document(path.parent, path.name, dict)
        except UnreadableFile:
            continue
        metric = _text((meta or {}).get("main_metric"))
        if metric:
            return metric
    return None


def chosen_metric(summary: dict[str, Any], config: dict[str, Any], run_dir: Path | None = None) -> str | None:
    """The metric that ranks a run, when its files name it: summary's ``best/<m>``, ``trainer.monitor``,
    summary's ``main_metric`` (an `lmtrain embed` run's), or the one its checkpoints record (None: the
    first evaluation metric logged, see :func:`load_run`)."""
    best = next((k[len("best/") :] for k in summary if k.startswith("best/") and len(k) > len("best/")), None)
    return (
        best
        or _text(_node(config, "trainer").get("monitor"))
        or _text(summary.get("main_metric"))
        or (_checkpointed_metric(run_dir) if run_dir is not None else None)
    )


def _metric_values(record: RunRecord, found: MetricsDigest) -> None:
    """Fill final / best / best_step from the summary, else from the logged evaluations."""
    if record.metric is None:
        return
    summary, steps = record.summary, sorted(found.values)
    record.final = _number(summary.get(f"eval/{record.metric}"))
    if record.final is None and steps:
        record.final = found.values[steps[-1]]
    record.best = _number(summary.get(f"best/{record.metric}"))
    if record.best is not None:
        best_step = summary.get("best_step")
        record.best_step = best_step if is_step(best_step) else None
    elif steps:
        pick = min if lower_is_better(record.metric) else max
        record.best_step = pick(steps, key=found.values.__getitem__)
        record.best = found.values[record.best_step]
    else:  # evaluated once, at the end (an `lmtrain embed` run): that value is also the best
        record.best = record.final


def _progress(record: RunRecord, found: MetricsDigest) -> None:
    """Fill steps, wall time and tokens/s from the summary, else estimate them from the files."""
    summary, path = record.summary, record.path
    steps = summary.get("steps")
    record.steps = steps if is_step(steps) else found.last_step
    wall = _number(summary.get("wall_seconds", summary.get("wall_time_s")))  # training runs', `lmtrain embed`'s
    record.wall_seconds = wall if wall is not None and wall >= 0 else None
    if record.wall_seconds is None:
        try:
            spent = (path / METRICS_FILE).stat().st_mtime - (path / ".hydra").stat().st_mtime
            record.wall_seconds = round(spent, 2) if spent >= 0 else None
        except OSError:
            pass
    rate = _number(summary.get("tokens_per_s"))
    record.tokens_per_s = rate if rate is not None else found.tokens_per_s


def load_run(run_dir: str | Path, now: float | None = None, running_window: float = RUNNING_WINDOW_S) -> RunRecord:
    """Read one run directory (nothing in it is required; missing parts stay None).

    Args:
        run_dir: the run directory.
        now: the time to judge ``running`` against (default: now).
        running_window: seconds since the last write for a run without a summary to count as running.
    Returns:
        The record; ``status`` is ``unreadable`` (``detail``: why) when a file of the run cannot be read.
    """
    path = Path(run_dir)
    problems: list[str] = []
    summary = _read(path, SUMMARY_FILE, dict, "json", problems)
    saved_config = _read(path, CONFIG_FILE, dict, "yaml", problems)  # read even when the summary has one: a
    config = _node(summary or {}, "config") or saved_config or {}  # damaged file is reported either way
    status = read_status(path)
    state, detail = judge_status(path, status, summary is not None, time.time() if now is None else now, running_window)
    record = RunRecord(
        path=path,
        status=state,
        detail=detail,
        summary=summary or {},
        config=config,
        overrides=read_overrides(path, problems),
        problems=problems,
    )
    record.command = (
        _text(record.summary.get("command"))
        or _text((status or {}).get("command"))
        or _job_name(path, problems)
        or ("finetune" if "task" in config else None)
    )
    record.model = (
        _text(record.summary.get("model"))
        or _text(_node(config, "model").get("name"))
        or _text(record.summary.get("method"))  # `lmtrain embed`: word2vec, glove ...
    )
    record.task = _text(record.summary.get("task")) or _text(_node(config, "task").get("name"))
    found = digest(record.events, chosen_metric(record.summary, config, path))
    record.metric = found.metric[len("eval/") :] if found.metric else None
    _metric_values(record, found)
    _progress(record, found)
    if found.skipped:
        log.warning("%s: %d line(s) of %s are not events with a step; left out", path, found.skipped, METRICS_FILE)
    if problems:
        record.status, record.detail = UNREADABLE, "; ".join(problems)
    return record


def unreadable_record(run_dir: str | Path, error: BaseException) -> RunRecord:
    """The row of a run whose reading failed in a way :func:`load_run` did not foresee."""
    reason = f"could not be read ({type(error).__name__}: {' '.join(str(error).split())[:200]})"
    return RunRecord(path=Path(run_dir), status=UNREADABLE, detail=reason, problems=[reason])


def load_runs(
    run_dirs: Iterable[str | Path], now: float | None = None, running_window: float = RUNNING_WINDOW_S
) -> list[RunRecord]:
    """:func:`load_run` for each directory, judged against the same ``now``; a folder that fails to
    read becomes an ``unreadable`` record and the others are still read."""
    now = time.time() if now is None else now
    records = []
    for path in run_dirs:
        try:
            records.append(load_run(path, now, running_window))
        except Exception as error:  # noqa: BLE001 - one folder must never stop the listing; its row says why
            records.append(unreadable_record(path, error))
    return records
