"""Chunks of a corpus turned into example-store shards, in this process or in ``data.num_proc`` worker processes.

Each chunk becomes one shard, named by its number, whoever builds it: a chunk's examples depend
only on its documents and its seed (see :mod:`lmtrain.data.examples`), so the shards, and the store
that lists them in chunk order, are byte for byte the same for any number of processes.

Workers are started with ``spawn``: a fresh interpreter holds no threads of `tokenizers`, torch or
the data loader that a ``fork`` would copy in a broken state, and it behaves the same on Linux and
macOS, alone or under ``torchrun``. The corpus is read once, here; workers receive a chunk's
documents, and at most two chunks per worker are in flight, so memory stays bounded. A worker ends
when the process that started it ends, even by ``kill -9`` (see :mod:`lmtrain.data.orphans`).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from lmtrain.config.data import TextDataConfig
from lmtrain.data.examples import ExamplePlan, build_examples, tokenize_documents
from lmtrain.data.orphans import end_with_parent
from lmtrain.data.store import StoreWriter
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError

log = logging.getLogger(__name__)

_IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: one running, one ready to start


def shard_name(index: int) -> str:
    """The folder name of chunk ``index``'s shard (names sort in chunk order)."""
    return f"chunk-{index:06d}"


@dataclass
class ChunkJob:
    """One chunk of documents to turn into a shard.

    Attributes:
        part: ``train`` or ``eval``.
        index: the chunk's number within its part (names the shard).
        docs: the chunk's documents, each a list of sentences.
        dupe_factor: copies of the examples, each with its own static mask.
        seed: the chunk's seed (NSP partners, static masks).
        shard: where its shard is written.
    """

    part: str
    index: int
    docs: list[list[str]]
    dupe_factor: int
    seed: int
    shard: Path


@dataclass
class ChunkReport:
    """What building one chunk gave: its examples (no shard is written for none), its time, its process."""

    part: str
    index: int
    examples: int
    seconds: float
    pid: int


class ChunkBuilder:
    """Tokenize a chunk, build its examples and write them as a shard.

    Args:
        tokenizer: the tokenizer.
        data_cfg: the ``data`` config group (sequence length, NSP and packing settings).
        plan: the objective's examples for this tokenizer.
    """

    def __init__(self, tokenizer: TextTokenizer, data_cfg: TextDataConfig, plan: ExamplePlan):
        self.tokenizer, self.data_cfg, self.plan = tokenizer, data_cfg, plan

    def build(self, job: ChunkJob) -> ChunkReport:
        """Write ``job``'s shard (atomically; nothing when the chunk gives no example) and report on it."""
        started = time.perf_counter()
        sentences = tokenize_documents(job.docs, self.tokenizer)
        sequences, scalars = build_examples(
            sentences, self.tokenizer, self.data_cfg, self.plan, job.dupe_factor, job.seed
        )
        count = len(next(iter(sequences.values())))
        if count:
            with StoreWriter(job.shard, self.data_cfg.max_seq_len, {"objective": self.plan.objective}) as store:
                store.append(sequences, scalars)
        return ChunkReport(job.part, job.index, count, time.perf_counter() - started, os.getpid())


_worker_builder: ChunkBuilder | None = None  # a worker process's builder, made once by _start_worker


def _start_worker(
    parent: int, tokenizer_text: str, roles: dict[str, str], data_cfg: TextDataConfig, plan: ExamplePlan
) -> None:
    global _worker_builder
    end_with_parent(parent)
    _worker_builder = ChunkBuilder(TextTokenizer.from_str(tokenizer_text, roles), data_cfg, plan)


def _build_in_worker(job: ChunkJob) -> ChunkReport:
    assert _worker_builder is not None, "the pool's initializer, _start_worker, makes the builder"
    return _worker_builder.build(job)


def build_chunks(jobs: Iterable[ChunkJob], builder: ChunkBuilder, num_proc: int) -> list[ChunkReport]:
    """Build every job's shard with ``num_proc`` processes (this one alone for 1, or for a single chunk).

    Args:
        jobs: the chunks, in corpus order (read lazily: at most two per worker are held at once).
        builder: what builds a chunk (its tokenizer, settings and plan are sent to the workers).
        num_proc: worker processes.
    Returns:
        A report per job, in the order they finished.
    Raises:
        UserError: a worker process died (killed, out of memory).
    """
    jobs = iter(jobs)
    first = list(itertools.islice(jobs, 2))
    if num_proc == 1 or len(first) < 2:  # starting workers would only cost time
        return [builder.build(job) for job in itertools.chain(first, jobs)]
    return _build_in_pool(itertools.chain(first, jobs), builder, num_proc)


def _build_in_pool(jobs: Iterator[ChunkJob], builder: ChunkBuilder, num_proc: int) -> list[ChunkReport]:
    setup = (os.getpid(), builder.tokenizer.to_str(), builder.tokenizer.roles, builder.data_cfg, builder.plan)
    pool = ProcessPoolExecutor(
        num_proc, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=setup
    )
    reports: list[ChunkReport] = []
    pending: set[Future] = set()
    try:
        for job in jobs:
            if len(pending) >= _IN_FLIGHT_PER_WORKER * num_proc:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                reports += [future.result() for future in done]
            pending.add(pool.submit(_build_in_worker, job))
        reports += [future.result() for future in wait(pending).done]
    except BrokenProcessPool:
        raise UserError(
            f"a data preparation worker process ended abruptly (killed, or out of memory) while "
            f"tokenizing with data.num_proc={num_proc}; nothing was cached. Run again, with a smaller "
            "data.num_proc if memory is short."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return reports


def log_reports(reports: list[ChunkReport], seconds: float) -> None:
    """Log how many chunks and examples each process prepared and how long it worked on them."""
    pids = sorted({report.pid for report in reports})
    log.info(
        "prepared %d chunks (%d examples) in %.1f s with %d process%s",
        len(reports),
        sum(r.examples for r in reports),
        seconds,
        len(pids),
        "" if len(pids) == 1 else "es",
    )
    for number, pid in enumerate(pids, 1):
        mine = [r for r in reports if r.pid == pid]
        log.info(
            "  process %d (pid %d): %d chunks, %d examples, %.1f s",
            number,
            pid,
            len(mine),
            sum(r.examples for r in mine),
            sum(r.seconds for r in mine),
        )
