"""Hydra's job log, ``<run dir>/<command>.log``, opened only once lmtrain has claimed the run folder.

Hydra's own file handler opens the log as soon as Hydra configures logging, before lmtrain has
looked at the folder: it would create or append to whatever ``<command>.log`` is there, a link's
target included, even when the command is then refused. The shipped configs name this handler
instead (``hydra.job_logging.handlers.file.class``). It keeps the job's log records in memory until
:func:`start_job_logs` (called once the run folder is claimed), then opens the file through
:func:`lmtrain.files.atomic.open_text` (recorded in the folder's ``.lmtrain-files``, never through a link)
and writes them. A command refused before that writes no log file (its error went to the terminal).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

from lmtrain.files.atomic import open_text

_MAX_PENDING = 10_000  # records kept before the folder is claimed (a few dozen in practice)


class JobLogHandler(logging.Handler):
    """A file handler that opens its file only when :meth:`start` is called.

    Args:
        filename: the log file (Hydra passes ``${hydra.runtime.output_dir}/${hydra.job.name}.log``).
        kwargs: ``logging.FileHandler``'s other arguments (mode, encoding, delay), accepted and ignored:
            the file is always appended to, in UTF-8.
    """

    def __init__(self, filename: str | Path, **kwargs: Any):
        super().__init__()
        self.path = Path(filename).absolute()
        self._file: IO[str] | None = None
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, or keep it until the file is opened."""
        try:
            line = self.format(record) + "\n"
            if self._file is None:
                if len(self._pending) < _MAX_PENDING:
                    self._pending.append(line)
                return
            self._file.write(line)
            self._file.flush()
        except Exception:  # noqa: BLE001 - logging's contract: a handler reports its own errors
            self.handleError(record)

    def start(self) -> None:
        """Open the log file (appending) and write the records kept so far.

        Raises:
            UserError: the log's name is taken by a link or a file lmtrain did not write.
        """
        self.acquire()  # the handler's lock (``self.lock`` is typed Optional, though __init__ always creates it)
        try:
            if self._file is None:
                self._file = open_text(self.path)
                self._file.write("".join(self._pending))
                self._file.flush()
                self._pending = []
        finally:
            self.release()

    def close(self) -> None:
        """Close the file; records never written (the folder was not claimed) are dropped."""
        self.acquire()
        try:
            if self._file is not None:
                self._file.close()
            self._file, self._pending = None, []
        finally:
            self.release()
        super().close()


def job_log_handlers(run_dir: Path) -> list[JobLogHandler]:
    """The job log handlers of the root logger that write into ``run_dir``."""
    folder = Path(run_dir).absolute()
    return [h for h in logging.getLogger().handlers if isinstance(h, JobLogHandler) and h.path.parent == folder]


def start_job_logs(run_dir: Path) -> None:
    """Open the job logs of ``run_dir`` (once the command has claimed it); see the module docstring."""
    for handler in job_log_handlers(run_dir):
        handler.start()


def stop_job_logs(run_dir: Path) -> None:
    """Close the job logs of ``run_dir`` (before the folder is removed); later records are not written."""
    for handler in job_log_handlers(run_dir):
        handler.close()
