"""The run history: one SQLite database, plus the output files of each run.

sqlite3 calls and file writes block, so every one of them happens on a single worker thread
and the asyncio API here just hands work to it. One thread also means one connection and no
locking of our own: jobs run one at a time, in the order they were submitted.

The rooms::

    store          this facade, on the loop: hands jobs to the worker, keeps the trouble
    store_db       the run records, on the worker: unsaved records, doomed rows, the counts
    store_schema   the database file: migrations, connect, check, row <-> Run, durability
    store_logs     each run's output files, on the worker: caps, markers, a full disk
    store_errors   the exception tree below, and the kinds of storage trouble

The runs per state (the summary every state change publishes, and the overview's counts) are
kept in memory by ``store_db`` and read here without a query or a thread hop.

When the disk or the database fails (``Trouble``: the disk is full, the database is read-only,
gives I/O errors or is damaged), nothing that lives in memory is lost (``store_db`` keeps what
could not be written, and writes it at the next write or ``retry``). Output that cannot be
written for lack of space is dropped and counted (``store_logs``); a line in the log says how
much, once space returns. ``problem`` is the trouble as it stands, and ``on_problem`` hears when
it changes.

Exceptions (``aios.store_errors``)::

    StoreError            the database or a log file could not be used (the message names it)
    ├── UnknownRun        no run has that id (or id prefix)
    ├── AmbiguousRun      an id prefix matches more than one run
    └── StoreUnavailable  the disk is full, or the database is read-only, failing or damaged:
                          not AIOS's fault, and said so
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from aios import disk
from aios.runs import Run, RunState
from aios.store_db import Database, Usage
from aios.store_errors import (
    PASSING,
    StoreError,
    StoreUnavailable,
    Trouble,
    os_trouble,
    sqlite_trouble,
)
from aios.store_logs import MiB, RunLogs, Stream, Wrote, check_id

T = TypeVar("T")
logger = logging.getLogger("aios.store")

# Log writes of one run that may be queued behind the one being done (see append_log).
WRITES_AHEAD = 2


class Store:
    def __init__(
        self,
        database: Path,
        logs_dir: Path,
        *,
        log_cap_bytes: int = 50 * MiB,
        retention: int = 1000,
    ) -> None:
        if log_cap_bytes < 1 or retention < 1:
            raise ValueError("log_cap_bytes and retention must be positive")
        self.database = database
        self.logs_dir = logs_dir
        self.log_cap_bytes = log_cap_bytes
        self.retention = retention
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-store")
        # Both touched only on the worker.
        self._logs = RunLogs(logs_dir, log_cap_bytes)
        self._db = Database(database, retention=retention, forget=self._logs.forget)
        self._writes: dict[str, deque[asyncio.Future[Wrote]]] = {}  # log writes not yet awaited
        # Output dropped for lack of space, per run (from the writes' results), for the record
        # that ends it.
        self._lost: dict[str, tuple[int, Path]] = {}
        # The trouble as it stands; on_problem hears every change (on the loop).
        self.problem: StoreUnavailable | None = None
        self.on_problem: Callable[[StoreUnavailable | None], None] | None = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> builtins.list[Run]:
        """Open (creating or migrating) the database; returns the runs left in a live state."""
        return await self._call(self._open)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # Jobs run in submission order, so everything queued before this has finished.
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            await asyncio.to_thread(self._executor.shutdown)

    def _open(self) -> builtins.list[Run]:
        self._logs.make_private()
        return self._db.open()

    def _close(self) -> None:
        self._logs.close_all()
        self._db.close()

    # -- runs -------------------------------------------------------------------------------

    async def save(self, run: Run) -> builtins.list[Run]:
        """Insert or update ``run``; returns the runs pruned from history to make room (their
        logs are gone already; a worktree of theirs is for the caller to deal with)."""
        return await self._call(partial(self._db.save, [run]))

    async def save_many(
        self, runs: Sequence[Run], *, close_logs: Sequence[str] = ()
    ) -> builtins.list[Run]:
        """Save several runs in one transaction (one commit for a batch of state changes), and
        close the logs of ``close_logs`` (runs that ended) in the same trip to the worker;
        returns the runs pruned to make room.

        A write to one of those logs that had failed is logged, not raised: the state change
        is what the caller is about, and it was saved.
        """
        writes = [(run_id, self._writes.pop(run_id, deque())) for run_id in close_logs]
        pruned: builtins.list[Run] = []
        try:
            if runs or close_logs:
                job = partial(self._save_and_close, list(runs), list(close_logs))
                pruned = await self._call(job, write=True)
        finally:
            for run_id, pending in writes:
                for write in pending:  # done: they were queued before the close
                    try:
                        await self._settle(run_id, write)
                    except StoreError as exc:
                        logger.error("writing the output of run %s failed: %s", run_id, exc)
        return pruned

    def _save_and_close(
        self, runs: builtins.list[Run], close: builtins.list[str]
    ) -> builtins.list[Run]:
        try:
            return self._db.save(runs) if runs else []
        finally:
            for run_id in close:
                self._logs.close(run_id)

    async def update(self, run: Run) -> bool:
        """Update ``run`` only if history still holds it (never brings a deleted run back)."""
        return await self._call(partial(self._db.update, run), write=True)

    async def with_worktree(self, path: str) -> builtins.list[Run]:
        """The runs whose worktree is at ``path`` (a continued run shares its parent's)."""
        return await self._call(partial(self._db.with_worktree, path))

    async def get(self, run_id: str) -> Run | None:
        return await self._call(partial(self._db.get, run_id))

    async def list(
        self,
        *,
        limit: int = 50,
        before: str | None = None,
        states: Collection[RunState] | None = None,
    ) -> builtins.list[Run]:
        """Runs newest first; ``before`` (a run id) pages back to the runs older than it."""
        return await self._call(partial(self._db.list, limit, before, states))

    async def resolve(self, prefix: str) -> Run:
        """The run whose id is ``prefix``, or the only one whose id starts with it."""
        return await self._call(partial(self._db.resolve, prefix))

    async def delete(self, run_id: str) -> None:
        """Forget a run and its files; raises UnknownRun if there was no such row.

        The files go first: they are what frees space when the disk is full, and a row that
        cannot be deleted yet is remembered as deleted (see the module docstring)."""
        failed = await self._call(partial(self._db.delete, run_id))
        if failed is not None:
            self._translate(failed)  # the trouble is known; the delete is done all the same
        else:
            self._wrote()

    async def chain(self, run_id: str, live: Callable[[str], Run | None]) -> builtins.list[Run]:
        """``run_id``'s conversation, oldest first (a run whose ``parent`` is gone starts it);
        ``live`` gives the live copy of a run, where there is one."""
        runs = await self._call(partial(self._db.chain, run_id))
        return [live(r.id) or r for r in runs]

    async def counts(self) -> dict[str, int]:
        """Runs per state (only states that occur), plus "total"."""
        return self.summary()

    def summary(self) -> dict[str, int]:
        """Runs per state (only states that occur), plus "total", as of the last completed write.

        Safe from any thread, and immediate: it is kept in memory, not queried.
        """
        return dict(self._db.summary)

    async def usage(self) -> Usage:
        """Tokens and cost over the whole history, as the agents reported them."""
        return await self._call(self._db.usage)

    # -- logs -------------------------------------------------------------------------------

    async def append_log(self, run_id: str, data: bytes, stream: Stream = "log") -> None:
        """Append to one of the run's logs. Returns once the write is queued, unless
        ``WRITES_AHEAD`` writes of this run are still waiting, then once the oldest is done:
        reading the next chunk overlaps writing this one, while a flooding agent still waits on
        its pipe (it is not read) rather than our memory growing. A write that failed is raised
        by the next ``append_log`` or ``close_log`` of the run."""
        if self._closed:
            raise StoreError("the store is closed")
        check_id(run_id)  # here, not later: a path must never be queued
        writes = self._writes.setdefault(run_id, deque())
        loop = asyncio.get_running_loop()
        job = partial(self._logs.append, run_id, data, stream)
        writes.append(loop.run_in_executor(self._executor, job))
        while len(writes) > WRITES_AHEAD or (writes and writes[0].done()):
            await self._settle(run_id, writes.popleft())

    async def settle_log(self, run_id: str) -> None:
        """Wait for the run's queued log writes (the files stay open)."""
        writes = self._writes.get(run_id)
        while writes:
            await self._settle(run_id, writes.popleft())

    def lost_output(self, run_id: str) -> str | None:
        """What the run's settled writes could not keep for lack of space, in words (once)."""
        lost = self._lost.pop(run_id, None)
        if lost is None:
            return None
        size, path = lost
        return f"{size} bytes of output were not kept: {disk.full_message(path)}"

    async def read_log(
        self, run_id: str, offset: int = 0, limit: int | None = None, stream: Stream = "log"
    ) -> bytes:
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        return await self._call(partial(self._logs.read, run_id, offset, limit, stream))

    async def log_size(self, run_id: str, stream: Stream = "log") -> int:
        return await self._call(partial(self._logs.size, run_id, stream))

    async def write_file(self, run_id: str, data: bytes, stream: Stream) -> None:
        """Replace the whole of one of a run's files (its diff), atomically."""
        await self._call(partial(self._logs.write_file, run_id, data, stream))

    async def close_log(self, run_id: str) -> None:
        writes = self._writes.pop(run_id, deque())
        try:
            while writes:
                await self._settle(run_id, writes.popleft())
        finally:
            await self._call(partial(self._logs.close, run_id))

    async def _settle(self, run_id: str, write: asyncio.Future[Wrote]) -> None:
        try:
            wrote = await write
        except OSError as exc:
            raise self._translate(exc) from exc
        if wrote.lost and wrote.path is not None:
            before, _ = self._lost.get(run_id, (0, wrote.path))
            self._lost[run_id] = (before + wrote.lost, wrote.path)
            if self.problem is None or self.problem.trouble is not Trouble.DISK_FULL:
                self._set_problem(StoreUnavailable(Trouble.DISK_FULL, wrote.path, "ENOSPC"))

    # -- trouble: a full disk, a failing database ------------------------------------------

    async def retry(self) -> StoreUnavailable | None:
        """Write what could not be written, and see whether the trouble has passed; returns the
        trouble that remains (None: none)."""
        if self.problem is None or self._closed:
            return self.problem
        reconnect = self.problem.trouble in PASSING
        with contextlib.suppress(StoreUnavailable):
            await self._call(partial(self._db.flush, reconnect=reconnect), write=True)
            if self.problem is not None and self.problem.trouble is Trouble.DISK_FULL:
                free = disk.free_bytes(self.logs_dir)
                if free is None or free >= disk.MIN_FREE:
                    self._set_problem(None)
        return self.problem

    async def watch(self) -> None:
        """Notice a database file changed by something else than us (a stat), and if it was,
        check it (``quick_check`` on a connection of its own: ours has its pages cached);
        damage found becomes the problem, and every later use of the database answers so."""
        with contextlib.suppress(StoreUnavailable):
            await self._call(self._db.look, track=False)

    async def check_writable(self) -> None:
        """Raise StoreUnavailable if history cannot take a new run now (tried again first, and
        the free space looked at: a system call)."""
        if self.problem is not None and await self.retry() is not None:
            raise _again(self.problem)
        free = disk.free_bytes(self.logs_dir)
        if free is not None and free < disk.MIN_FREE:
            detail = f"{free} bytes free"
            self._set_problem(StoreUnavailable(Trouble.DISK_FULL, self.logs_dir, detail))
            raise _again(self.problem)

    def _set_problem(self, problem: StoreUnavailable | None) -> None:
        before = self.problem
        if before is None and problem is None:
            return
        if before is not None and problem is not None and before.trouble is problem.trouble:
            return  # the same trouble, seen again (perhaps through another file)
        if problem is not None and before is not None and before.trouble is Trouble.CORRUPT:
            return  # nothing makes a damaged file sound again: that is what the user must know
        self.problem = problem
        if problem is not None:
            logger.error("%s", problem)
        else:
            logger.warning("history can be written again (it was: %s)", before)
        if self.on_problem is not None:
            self.on_problem(problem)

    def _translate(self, exc: sqlite3.Error | OSError) -> StoreError:
        """A StoreError that says what failed; trouble (see Trouble) is also kept as ``problem``."""
        if isinstance(exc, sqlite3.Error):
            trouble = sqlite_trouble(exc)
            path, error = self.database, StoreError(f"history database {self.database}: {exc}")
        else:
            trouble = os_trouble(exc)
            path = Path(exc.filename) if exc.filename else self.logs_dir
            error = StoreError(str(exc))
        if trouble is None:
            return error
        if trouble is Trouble.IO_ERROR and getattr(exc, "read_only", False):
            trouble = Trouble.READ_ONLY  # SQLite said "disk I/O error"; the worker looked why
        problem = StoreUnavailable(trouble, path, str(exc))
        self._set_problem(problem)
        return problem

    # -- handing jobs to the worker ---------------------------------------------------------

    async def _call(self, job: Callable[[], T], *, write: bool = False, track: bool = True) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, partial(self._db.job, job) if track else job
            )
        except (sqlite3.Error, OSError) as exc:
            raise self._translate(exc) from exc
        except StoreUnavailable as exc:  # a damaged file found on the worker
            self._set_problem(exc)
            raise
        if write:
            self._wrote()
        return result

    def _wrote(self) -> None:
        """A write to the database went through: trouble that passes by itself has passed."""
        if self.problem is not None and self.problem.trouble in PASSING:
            self._set_problem(None)


def _again(problem: StoreUnavailable | None) -> StoreUnavailable:
    """A fresh exception for the trouble as it stands (one raised twice grows its traceback)."""
    assert problem is not None
    return StoreUnavailable(problem.trouble, problem.path, problem.detail)
