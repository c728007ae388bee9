"""The run history: one SQLite database, plus one raw output log file per run.

sqlite3 calls and file writes block, so every one of them happens on a single worker thread
and the asyncio API just hands work to it. One thread also means one connection and no
locking of our own: jobs run one at a time, in the order they were submitted.

Durability: WAL with ``synchronous = NORMAL``. A committed change is in the WAL file before
``save`` returns, so it survives the daemon crashing or being killed in any way, and the
database is never corrupted; only a power loss or an OS crash can take back the last changes
since the WAL was last synced (at each checkpoint). ``FULL`` would fsync every state change,
3-4 ms each on our machines - more than the whole budget from an agent's exit to its event
(docs/performance.md).

The runs per state (the summary every state change publishes, and the overview's counts) are
kept in memory, updated by every write and read without a query or a thread hop: a GROUP BY
over a long history takes longer than the rest of a page.

When the disk or the database fails (``Trouble``: the disk is full, the database is read-only,
gives I/O errors or is damaged), nothing that lives in memory is lost: run records that could not
be written are kept (``_unsaved``) and read back as they are, deletes that could not be made are
remembered (``_doomed``), and both are written at the next write or ``retry``. Output that cannot
be written for lack of space is dropped and counted; a line in the log says how much, once space
returns. ``problem`` is the trouble as it stands, and ``on_problem`` hears when it changes.

Exceptions::

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
import errno
import io
import json
import logging
import os
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from aios import disk, private
from aios.runs import (
    FINAL_STATES,
    Activity,
    Changes,
    Denial,
    FailureKind,
    Permission,
    Run,
    RunState,
    Tokens,
    Worktree,
    WorktreeState,
)

T = TypeVar("T")
logger = logging.getLogger("aios.store")

MiB = 1024 * 1024
CHAIN_MAX = 200  # runs shown as one conversation; a longer chain starts at its newest 200
# Log writes of one run that may be queued behind the one being done (see append_log).
WRITES_AHEAD = 2

# Each migration is a list of statements, run in one transaction together with the
# user_version bump; append new ones, never edit old ones (databases in the wild ran them).
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            agent TEXT NOT NULL,
            prompt TEXT NOT NULL,
            cwd TEXT NOT NULL,
            state TEXT NOT NULL,
            pid INTEGER,
            exit_code INTEGER,
            created_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            restarts INTEGER NOT NULL,
            error TEXT,
            pid_started_at REAL
        )
        """,
    ),
    # 2: what a run knows from its agent's output, and how it was asked to work.
    (
        "ALTER TABLE runs ADD COLUMN permission TEXT",
        "ALTER TABLE runs ADD COLUMN format TEXT NOT NULL DEFAULT 'text'",
        "ALTER TABLE runs ADD COLUMN activity TEXT",
        "ALTER TABLE runs ADD COLUMN activity_detail TEXT",
        "ALTER TABLE runs ADD COLUMN session_id TEXT",
        "ALTER TABLE runs ADD COLUMN model TEXT",
        "ALTER TABLE runs ADD COLUMN tokens TEXT",  # JSON {"input", "output", "cached"}
        "ALTER TABLE runs ADD COLUMN cost_usd REAL",
        "ALTER TABLE runs ADD COLUMN num_turns INTEGER",
        "ALTER TABLE runs ADD COLUMN denials TEXT NOT NULL DEFAULT '[]'",  # JSON list
        "ALTER TABLE runs ADD COLUMN error_kind TEXT",
        "ALTER TABLE runs ADD COLUMN hint TEXT",
    ),
    # 3: conversations (a run that continues another) and isolation (a git worktree per run,
    # and what the run changed).
    (
        "ALTER TABLE runs ADD COLUMN parent TEXT",
        "ALTER TABLE runs ADD COLUMN worktree TEXT",  # JSON {"path", "branch", "base"}
        "ALTER TABLE runs ADD COLUMN changes TEXT",  # JSON {"files": [...], "commits": ...}
        "CREATE INDEX runs_parent ON runs (parent)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

# The fields of Run that are persisted; cpu_percent and rss_bytes are live samples only.
COLUMNS = (
    "id", "agent", "prompt", "cwd", "state", "pid", "exit_code",
    "created_at", "started_at", "ended_at", "restarts", "error", "pid_started_at",
    "permission", "format", "activity", "activity_detail", "session_id", "model", "tokens",
    "cost_usd", "num_turns", "denials", "error_kind", "hint", "parent", "worktree", "changes",
)  # fmt: skip
# Only our own column names are interpolated into SQL; values always go through "?".
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM runs"  # noqa: S608
_MARKS = ", ".join("?" * len(COLUMNS))
_UPSERT = (
    f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({_MARKS}) "  # noqa: S608
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:])}"
)
_UPDATE = f"UPDATE runs SET {', '.join(f'{c} = ?' for c in COLUMNS[1:])} WHERE id = ?"  # noqa: S608
_FINAL = tuple(str(state) for state in FINAL_STATES)
_LIVE = tuple(str(state) for state in RunState if state.is_live)
# Each run has a readable log, and for agents with a structured output the raw lines it wrote
# on stdout (its "events", JSON lines), both capped at log_cap_mib; a run in a git directory
# also has the diff of what it changed (written whole when it ends, capped by its writer).
Stream = Literal["log", "events", "diff"]
_SUFFIXES: dict[Stream, str] = {"log": ".log", "events": ".events.jsonl", "diff": ".diff"}
_EVENTS_MARKER = b'\n{"type":"aios.truncated","message":"later events were not kept"}\n'
# Log files are named after run ids, which may arrive from a URL: never let one be a path.
_SAFE_ID = re.compile(r"[0-9A-Za-z_-]+")


class StoreError(Exception):
    pass


class UnknownRun(StoreError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run matches {run_id!r}")


class AmbiguousRun(StoreError):
    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        shown = ", ".join(self.candidates[:5]) + (", …" if len(self.candidates) > 5 else "")
        super().__init__(f"{prefix!r} matches {len(self.candidates)} runs: {shown}")


class Trouble(StrEnum):
    DISK_FULL = "disk_full"
    READ_ONLY = "read_only"
    IO_ERROR = "io_error"
    CORRUPT = "corrupt"


class StoreUnavailable(StoreError):
    """History cannot be written (or read) for a reason outside AIOS; the message says which and
    what to do."""

    def __init__(self, trouble: Trouble, path: Path, detail: str, *, running: bool = True) -> None:
        self.trouble = trouble
        self.path = path
        self.detail = detail
        messages = {
            Trouble.DISK_FULL: f"{disk.full_message(path)}: free some space (deleting old runs "
            "frees theirs)",
            Trouble.READ_ONLY: f"the history database {path} cannot be written: it or its file "
            f"system is read-only ({detail})",
            Trouble.IO_ERROR: f"the history database {path} cannot be used: {detail}",
            Trouble.CORRUPT: f"the history database {path} is damaged ({detail}): "
            f"{'stop AIOS, ' if running else ''}move it aside (mv {path} {path}.damaged) and "
            "start AIOS again (it starts with an empty history)",
        }
        super().__init__(messages[trouble])

    def to_json(self) -> dict[str, str]:
        return {"kind": str(self.trouble), "error": str(self)}


@dataclass(frozen=True)
class Usage:
    tokens: Tokens
    cost_usd: float | None  # None: no run reported a cost


@dataclass
class _Log:
    file: io.FileIO
    size: int


@dataclass(frozen=True)
class _Wrote:
    """What a log write did: the bytes it could not keep for lack of space, and where."""

    lost: int = 0
    path: Path | None = None


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
        self._marker = (
            f"\n[aios: output truncated at {log_cap_bytes / MiB:g} MiB; "
            "later output was not kept]\n"
        ).encode()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-store")
        self._db: sqlite3.Connection | None = None  # created, used and closed on the worker
        self._logs: dict[tuple[str, Stream], _Log] = {}  # touched only on the worker
        self._writes: dict[str, deque[asyncio.Future[_Wrote]]] = {}  # log writes not yet awaited
        # When the database cannot be written (touched only on the worker): run records kept
        # until they can be (those never inserted in _unsaved_new), and runs deleted whose
        # rows are still there. Both are read as if written.
        self._unsaved: dict[str, Run] = {}
        self._unsaved_new: set[str] = set()
        self._doomed: set[str] = set()
        # Output dropped for lack of space and not yet marked in its log (worker), and per run
        # (loop side, from the writes' results) for the record that ends it.
        self._dropped: dict[tuple[str, Stream], int] = {}
        self._lost: dict[str, tuple[int, Path]] = {}
        # The trouble as it stands (loop side); on_problem hears every change (on the loop).
        self.problem: StoreUnavailable | None = None
        self.on_problem: Callable[[StoreUnavailable | None], None] | None = None
        # The database file as our last job left it (worker): a change nobody here made means
        # something else wrote it (watch), and a file found damaged is never read again.
        self._seen: tuple[int, int, int] | None = None
        self._damaged: StoreUnavailable | None = None
        self._opened = False  # open() succeeded and close() has not been called (worker)
        self._counts: dict[str, int] = {}  # runs per state; touched only on the worker
        # A copy of _counts, replaced (never changed) by the worker after each write: readers on
        # any thread take the reference, which is atomic.
        self._summary: dict[str, int] = {"total": 0}
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

    # -- runs -------------------------------------------------------------------------------

    async def save(self, run: Run) -> builtins.list[Run]:
        """Insert or update ``run``; returns the runs pruned from history to make room (their
        logs are gone already; a worktree of theirs is for the caller to deal with)."""
        return await self._call(partial(self._save, [run]))

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

    async def update(self, run: Run) -> bool:
        """Update ``run`` only if history still holds it (never brings a deleted run back)."""
        return await self._call(partial(self._update, run), write=True)

    async def with_worktree(self, path: str) -> builtins.list[Run]:
        """The runs whose worktree is at ``path`` (a continued run shares its parent's)."""
        where = "WHERE json_extract(worktree, '$.path') = ? ORDER BY seq"
        return await self._call(partial(self._select, where, (path,)))

    async def get(self, run_id: str) -> Run | None:
        return await self._call(partial(self._get, run_id))

    async def list(
        self,
        *,
        limit: int = 50,
        before: str | None = None,
        states: Collection[RunState] | None = None,
    ) -> builtins.list[Run]:
        """Runs newest first; ``before`` (a run id) pages back to the runs older than it."""
        return await self._call(partial(self._list, limit, before, states))

    async def resolve(self, prefix: str) -> Run:
        """The run whose id is ``prefix``, or the only one whose id starts with it."""
        return await self._call(partial(self._resolve, prefix))

    async def delete(self, run_id: str) -> None:
        """Forget a run and its files; raises UnknownRun if there was no such row.

        The files go first: they are what frees space when the disk is full, and a row that
        cannot be deleted yet is remembered as deleted (see the module docstring)."""
        failed = await self._call(partial(self._delete, run_id))
        if failed is not None:
            self._translate(failed)  # the trouble is known; the delete is done all the same
        else:
            self._wrote()

    async def chain(self, run_id: str, live: Callable[[str], Run | None]) -> builtins.list[Run]:
        """``run_id``'s conversation, oldest first (a run whose ``parent`` is gone starts it);
        ``live`` gives the live copy of a run, where there is one."""
        runs = await self._call(partial(self._chain, run_id))
        return [live(r.id) or r for r in runs]

    async def counts(self) -> dict[str, int]:
        """Runs per state (only states that occur), plus "total"."""
        return self.summary()

    def summary(self) -> dict[str, int]:
        """Runs per state (only states that occur), plus "total", as of the last completed write.

        Safe from any thread, and immediate: it is kept in memory, not queried.
        """
        return dict(self._summary)

    async def usage(self) -> Usage:
        """Tokens and cost over the whole history, as the agents reported them."""
        return await self._call(self._usage)

    # -- logs -------------------------------------------------------------------------------

    async def append_log(self, run_id: str, data: bytes, stream: Stream = "log") -> None:
        """Append to one of the run's logs. Returns once the write is queued, unless
        ``WRITES_AHEAD`` writes of this run are still waiting, then once the oldest is done:
        reading the next chunk overlaps writing this one, while a flooding agent still waits on
        its pipe (it is not read) rather than our memory growing. A write that failed is raised
        by the next ``append_log`` or ``close_log`` of the run."""
        if self._closed:
            raise StoreError("the store is closed")
        if not _SAFE_ID.fullmatch(run_id):
            raise UnknownRun(run_id)  # here, not later: a path must never be queued
        writes = self._writes.setdefault(run_id, deque())
        loop = asyncio.get_running_loop()
        job = partial(self._append_log, run_id, data, stream)
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
        return await self._call(partial(self._read_log, run_id, offset, limit, stream))

    async def log_size(self, run_id: str, stream: Stream = "log") -> int:
        return await self._call(partial(self._log_size, run_id, stream))

    async def write_file(self, run_id: str, data: bytes, stream: Stream) -> None:
        """Replace the whole of one of a run's files (its diff), atomically."""
        await self._call(partial(self._write_file, run_id, data, stream))

    async def close_log(self, run_id: str) -> None:
        writes = self._writes.pop(run_id, deque())
        try:
            while writes:
                await self._settle(run_id, writes.popleft())
        finally:
            await self._call(partial(self._close_log, run_id))

    async def _settle(self, run_id: str, write: asyncio.Future[_Wrote]) -> None:
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
        reconnect = self.problem.trouble in _PASSING
        with contextlib.suppress(StoreUnavailable):
            await self._call(partial(self._flush, reconnect=reconnect), write=True)
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
            await self._call(self._look, track=False)

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
            trouble = _sqlite_trouble(exc)
            path, error = self.database, StoreError(f"history database {self.database}: {exc}")
        else:
            trouble = _os_trouble(exc)
            path = Path(exc.filename) if exc.filename else self.logs_dir
            error = StoreError(str(exc))
        if trouble is None:
            return error
        if trouble is Trouble.IO_ERROR and getattr(exc, "read_only", False):
            trouble = Trouble.READ_ONLY  # SQLite said "disk I/O error"; _job looked why
        problem = StoreUnavailable(trouble, path, str(exc))
        self._set_problem(problem)
        return problem

    # -- the worker side: everything below runs on the store thread ------------------------

    async def _call(self, job: Callable[[], T], *, write: bool = False, track: bool = True) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, partial(self._job, job) if track else job
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
        if self.problem is not None and self.problem.trouble in _PASSING:
            self._set_problem(None)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._damaged is not None:
            damaged = sqlite3.DatabaseError(self._damaged.detail)
            damaged.sqlite_errorcode = sqlite3.SQLITE_CORRUPT  # read as SQLite's own
            raise damaged
        if self._db is None and self._opened:  # a reconnection that failed: try again
            self._db = _connect(self.database)
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    def _job(self, job: Callable[[], T]) -> T:
        """Run a job; the database file as it leaves it is ours (see watch)."""
        try:
            return job()
        except sqlite3.Error as exc:
            # SQLite says "disk I/O error" for a read-only file system too: look (here, on
            # the worker: it may create a file) so that the user is told which.
            if _sqlite_trouble(exc) is Trouble.IO_ERROR and disk.read_only(self.database):
                exc.read_only = True  # type: ignore[attr-defined]
            raise
        finally:
            self._seen = _identity(self.database)

    def _look(self) -> None:
        if self._db is None or self._damaged is not None:
            return
        seen = _identity(self.database)
        if seen == self._seen:
            return
        logger.warning("the history database %s was changed by another program", self.database)
        try:
            check_database(self.database)
        except StoreUnavailable as exc:
            if exc.trouble is Trouble.CORRUPT:
                self._damaged = StoreUnavailable(exc.trouble, exc.path, exc.detail)
                raise self._damaged from exc
            raise
        self._seen = seen

    def _open(self) -> builtins.list[Run]:
        if self._db is None:
            _make_private(self.database, self.logs_dir)
            self._db = _connect(self.database)
            self._opened = True
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
            self._counts = {state: count for state, count in rows}
            self._publish_counts()
        marks = ", ".join("?" * len(_LIVE))
        return self._select(f"WHERE state IN ({marks}) ORDER BY seq", _LIVE)

    def _close(self) -> None:
        for log in self._logs.values():
            with contextlib.suppress(OSError):  # nothing is buffered: a full disk cannot matter
                log.file.close()
        self._logs.clear()
        if self._unsaved or self._doomed:
            with contextlib.suppress(sqlite3.Error, StoreError):
                self._flush()
        if self._unsaved or self._doomed:
            logger.error(
                "%d run records and %d deletes could not be written to %s; the runs that were "
                "live will show as interrupted at the next start",
                len(self._unsaved),
                len(self._doomed),
                self.database,
            )
        self._opened = False
        if self._db is not None:
            self._db.close()
            self._db = None

    def _select(self, where: str, params: Sequence[object]) -> builtins.list[Run]:
        rows = self._conn.execute(f"{_SELECT} {where}", params).fetchall()
        runs = (_to_run(row) for row in rows)
        if not self._unsaved and not self._doomed:
            return list(runs)
        return [self._unsaved.get(r.id, r) for r in runs if r.id not in self._doomed]

    def _get(self, run_id: str) -> Run | None:
        if run_id in self._unsaved_new:
            return self._unsaved[run_id]
        runs = self._select("WHERE id = ?", (run_id,))
        return runs[0] if runs else None

    def _flush(self, *, reconnect: bool = False) -> None:
        """Write what could not be written (or, with nothing waiting, one harmless write: has
        the trouble passed?). ``reconnect``: on a connection of its own first (one that had
        I/O errors may keep failing, and the file system may have been mounted again)."""
        if reconnect and self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
            self._db = _connect(self.database)
        if self._doomed:
            with _transaction(self._conn) as db:
                db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in self._doomed])
            self._doomed.clear()
        if self._unsaved:
            self._save([])
        else:
            with _transaction(self._conn) as db:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def _save_and_close(
        self, runs: builtins.list[Run], close: builtins.list[str]
    ) -> builtins.list[Run]:
        try:
            return self._save(runs) if runs else []
        finally:
            for run_id in close:
                self._close_log(run_id)

    def _save(self, runs: Iterable[Run]) -> builtins.list[Run]:
        # The counts move with what the runs are, written or not: a run that could not be
        # written is read back as it is (_unsaved), and counted so.
        runs = list(runs)
        counts = dict(self._counts)
        known: dict[str, str | None] = {i: str(r.state) for i, r in self._unsaved.items()}
        batch = dict(self._unsaved)
        for run in runs:
            batch.pop(run.id, None)  # the newest last, as they came
            batch[run.id] = run
        new = set(self._unsaved_new)
        pruned: builtins.list[Run] = []
        try:
            for run in runs:
                before = known[run.id] if run.id in known else self._stored_state(run.id)
                if before is None:
                    new.add(run.id)
                else:
                    _count(counts, before, -1)
                _count(counts, str(run.state), +1)
                known[run.id] = str(run.state)
            with _transaction(self._conn) as db:
                # An upsert: a run kept unsaved may or may not have its row by now.
                db.executemany(_UPSERT, [_to_row(run) for run in batch.values()])
                if new:
                    pruned = self._prune(db, counts)
        except sqlite3.Error as exc:
            if _sqlite_trouble(exc) is None:
                raise
            self._unsaved, self._unsaved_new = batch, new
            self._counts = counts
            self._publish_counts()
            raise
        self._unsaved, self._unsaved_new = {}, set()
        self._counts = counts
        self._publish_counts()
        for old in pruned:
            self._forget_log(old.id)
        return pruned

    def _stored_state(self, run_id: str) -> str | None:
        row = self._conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def _update(self, run: Run) -> bool:
        if run.id in self._doomed:
            return False
        if run.id in self._unsaved:
            self._save([run])
            return True
        values = _to_row(run)
        try:
            with _transaction(self._conn) as db:
                row = db.execute("SELECT state FROM runs WHERE id = ?", (run.id,)).fetchone()
                if row is None:
                    return False
                db.execute(_UPDATE, [*values[1:], run.id])
        except sqlite3.Error as exc:
            if _sqlite_trouble(exc) is not None and self._get(run.id) is not None:
                self._save([run])  # kept as unsaved, and counted, if it still fails
            raise
        if row[0] != values[COLUMNS.index("state")]:
            _count(self._counts, row[0], -1)
            _count(self._counts, values[COLUMNS.index("state")], +1)
            self._publish_counts()
        return True

    def _prune(self, db: sqlite3.Connection, counts: dict[str, int]) -> builtins.list[Run]:
        # Live runs are never pruned, so the history may stay above retention while they last.
        excess = sum(counts.values()) - self.retention
        if excess <= 0:
            return []
        marks = ", ".join("?" * len(_FINAL))
        runs = self._select(f"WHERE state IN ({marks}) ORDER BY seq LIMIT ?", (*_FINAL, excess))
        db.executemany("DELETE FROM runs WHERE id = ?", [(run.id,) for run in runs])
        for run in runs:
            _count(counts, str(run.state), -1)
        return runs

    def _publish_counts(self) -> None:
        summary = {state: count for state, count in self._counts.items() if count}
        summary["total"] = sum(summary.values())
        self._summary = summary

    def _list(
        self, limit: int, before: str | None, states: Collection[RunState] | None
    ) -> builtins.list[Run]:
        clauses: builtins.list[str] = []
        params: builtins.list[object] = []
        if before is not None:
            row = self._conn.execute("SELECT seq FROM runs WHERE id = ?", (before,)).fetchone()
            if row is None:
                raise UnknownRun(before)
            clauses.append("seq < ?")
            params.append(row[0])
        if states is not None:
            # An empty collection gives "state IN ()", which SQLite accepts and matches nothing.
            clauses.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(str(state) for state in states)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        runs = self._select(f"{where} ORDER BY seq DESC LIMIT ?", [*params, limit])
        if before is None and self._unsaved_new:  # the newest runs, not written yet
            unwritten = [
                self._unsaved[i]
                for i in self._unsaved_new
                if states is None or self._unsaved[i].state in states
            ]
            unwritten.sort(key=lambda r: r.created_at, reverse=True)
            runs = [*unwritten, *runs][:limit]
        return runs

    def _resolve(self, prefix: str) -> Run:
        if not prefix:
            raise UnknownRun(prefix)
        # substr() compares literally: a prefix with % or _ is not a LIKE pattern.
        runs = self._select(
            "WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY id = ? DESC, seq DESC",
            (prefix, len(prefix), prefix, prefix),
        )
        if not runs:
            raise UnknownRun(prefix)
        if runs[0].id != prefix and len(runs) > 1:
            raise AmbiguousRun(prefix, [run.id for run in runs])
        return runs[0]

    def _delete(self, run_id: str) -> sqlite3.Error | None:
        """None, or the error that keeps the row for now (the run reads as deleted)."""
        if run_id in self._doomed:
            raise UnknownRun(run_id)
        # Its files first: on a full disk they are the space that lets the rest be written.
        self._forget_log(run_id)
        if run_id in self._unsaved_new:
            run = self._unsaved.pop(run_id)
            self._unsaved_new.discard(run_id)
            _count(self._counts, str(run.state), -1)
            self._publish_counts()
            return None
        try:
            # fetchall: the statement must run to its end, or the write would stay open.
            rows = self._conn.execute(
                "DELETE FROM runs WHERE id = ? RETURNING state", (run_id,)
            ).fetchall()
        except sqlite3.Error as exc:
            if _sqlite_trouble(exc) is None or (gone := self._get(run_id)) is None:
                raise
            self._unsaved.pop(run_id, None)
            self._doomed.add(run_id)  # read as gone; deleted at the next write that works
            _count(self._counts, str(gone.state), -1)
            self._publish_counts()
            return exc
        self._unsaved.pop(run_id, None)
        if not rows:
            raise UnknownRun(run_id)
        _count(self._counts, rows[0][0], -1)
        self._publish_counts()
        return None

    def _chain(self, run_id: str) -> builtins.list[Run]:
        runs = self._select("WHERE id = ?", (run_id,))
        if not runs:
            return []
        seen = {run_id}
        while (parent := runs[0].parent) and parent not in seen and len(seen) < CHAIN_MAX:
            found = self._select("WHERE id = ?", (parent,))
            if not found:
                break
            runs.insert(0, found[0])
            seen.add(parent)
        while len(seen) < CHAIN_MAX:
            children = self._select("WHERE parent = ? ORDER BY seq DESC LIMIT 1", (runs[-1].id,))
            if not children or children[0].id in seen:
                break
            runs.append(children[0])
            seen.add(children[0].id)
        return runs

    def _usage(self) -> Usage:
        row = self._conn.execute(
            "SELECT SUM(cost_usd), SUM(json_extract(tokens, '$.input')),"
            " SUM(json_extract(tokens, '$.output')), SUM(json_extract(tokens, '$.cached'))"
            " FROM runs"
        ).fetchone()
        cost, tokens_in, tokens_out, cached = row
        return Usage(Tokens(int(tokens_in or 0), int(tokens_out or 0), int(cached or 0)), cost)

    def _log_path(self, run_id: str, stream: Stream = "log") -> Path:
        if not _SAFE_ID.fullmatch(run_id):
            raise UnknownRun(run_id)
        return self.logs_dir / f"{run_id}{_SUFFIXES[stream]}"

    def _append_log(self, run_id: str, data: bytes, stream: Stream) -> _Wrote:
        """Append; on a full disk, what does not fit is dropped and counted (and said in the
        log, by the first write that fits again)."""
        key = (run_id, stream)
        path = self._log_path(run_id, stream)
        kept_at: int | None = None
        log: _Log | None = None
        try:
            log = self._logs.get(key)
            if log is None:
                # Unbuffered: a write cut short by a full disk must say how much it wrote.
                fd = private.open_fd(path, os.O_WRONLY | os.O_APPEND)
                file = io.FileIO(fd, "ab")
                log = self._logs[key] = _Log(file, file.seek(0, os.SEEK_END))
            if (dropped := self._dropped.get(key)) is not None:
                _write_all(log, _lost_marker(dropped, path, stream))
                del self._dropped[key]
            # Past the cap means the marker is there already (this run or an earlier daemon).
            if log.size > self.log_cap_bytes or not data:
                return _Wrote()
            room = self.log_cap_bytes - log.size
            kept = data if len(data) <= room else data[:room]  # no copy of a chunk that fits
            kept_at = log.size
            _write_all(log, kept)
            if len(kept) < len(data):
                _write_all(log, self._marker if stream == "log" else _EVENTS_MARKER)
        except OSError as exc:
            if not disk.is_full(exc):
                raise
            written = 0 if kept_at is None or log is None else log.size - kept_at
            lost = len(data) - min(written, len(data))
            self._dropped[key] = self._dropped.get(key, 0) + lost
            return _Wrote(lost, path)
        return _Wrote()

    def _read_log(self, run_id: str, offset: int, limit: int | None, stream: Stream) -> bytes:
        try:
            with self._log_path(run_id, stream).open("rb") as file:
                file.seek(offset)
                return file.read(-1 if limit is None else limit)
        except FileNotFoundError:
            return b""

    def _log_size(self, run_id: str, stream: Stream) -> int:
        if (log := self._logs.get((run_id, stream))) is not None:
            return log.size
        try:
            return self._log_path(run_id, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def _write_file(self, run_id: str, data: bytes, stream: Stream) -> None:
        if (log := self._logs.pop((run_id, stream), None)) is not None:
            log.file.close()  # an append handle would write past the new end
        path = self._log_path(run_id, stream)
        partial_path = path.with_name(path.name + ".partial")
        try:
            private.write_bytes(partial_path, data)  # 0600 from the start, like every log
        except OSError:
            partial_path.unlink(missing_ok=True)  # half a file takes the space others need
            raise
        partial_path.replace(path)

    def _close_log(self, run_id: str) -> None:
        for stream in _SUFFIXES:
            log = self._logs.pop((run_id, stream), None)
            if log is not None:
                log.file.close()

    def _forget_log(self, run_id: str) -> None:
        self._close_log(run_id)
        for stream in _SUFFIXES:
            self._dropped.pop((run_id, stream), None)
            self._log_path(run_id, stream).unlink(missing_ok=True)


def _write_all(log: _Log, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a full disk takes part of a write); an
    OSError says why the rest was not, and the bytes written are counted in ``log.size``."""
    view = memoryview(data)
    done = 0
    try:
        while done < len(view):
            count = log.file.write(view[done:])
            if not count:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += count
    finally:
        log.size += done


def _lost_marker(size: int, path: Path, stream: Stream) -> bytes:
    words = f"{size} bytes of output were not kept here: {disk.full_message(path)}"
    words = words.replace(" is full", " was full")
    if stream == "events":
        return (json.dumps({"type": "aios.lost", "bytes": size, "message": words}) + "\n").encode()
    return f"\n[aios: {words}]\n".encode()


def _make_private(database: Path, logs_dir: Path) -> None:
    """History and output are the user's alone: 0600 files in 0700 directories, also those an
    older version left readable. SQLite gives its -wal and -shm files the database's mode."""
    private.ensure_private_dir(database.parent)
    private.ensure_private_dir(logs_dir)
    private.create(database)
    private.tighten_all(private.sqlite_files(database))
    private.tighten_all(p for p in logs_dir.iterdir() if p.is_file())  # output, events


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we write BEGIN/COMMIT ourselves rather than rely on sqlite3's guesses.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        if (trouble := _sqlite_trouble(exc)) is not None:
            raise StoreUnavailable(trouble, path, str(exc)) from exc
        raise
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    # Read before writing anything, so a file that is not ours (or is newer) stays untouched.
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"history database {path} has schema version {version}, newer than this "
            f"version of AIOS knows ({SCHEMA_VERSION}); refusing to downgrade it"
        )
    db.execute("PRAGMA journal_mode = WAL")
    # Durable across crashes of the daemon, not across power loss: see the module docstring.
    db.execute("PRAGMA synchronous = NORMAL")
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        with _transaction(db):
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number:d}")


def check_database(path: Path) -> None:
    """At start, before anything else touches it: is the history database sound? SQLite's
    ``quick_check`` (the page structure, not every index: milliseconds). Raises
    StoreUnavailable (CORRUPT) with what to do; a missing file is fine (it will be created)."""
    if not path.exists():
        return
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"history database {path}: {exc}") from exc
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        trouble = _sqlite_trouble(exc)
        if trouble is None:
            raise StoreError(f"history database {path}: {exc}") from exc
        raise StoreUnavailable(trouble, path, str(exc), running=False) from exc
    finally:
        db.close()
    problems = [str(row[0]) for row in rows if row and row[0] != "ok"]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        detail = f"integrity check: {problems[0]}{more}"
        raise StoreUnavailable(Trouble.CORRUPT, path, detail, running=False)


# Trouble that passes by itself (a file system remounted writable); a full disk passes when
# space is found (Store.retry), a damaged file never.
_PASSING = frozenset({Trouble.READ_ONLY, Trouble.IO_ERROR})
_SQLITE_TROUBLE = {
    sqlite3.SQLITE_FULL: Trouble.DISK_FULL,
    sqlite3.SQLITE_READONLY: Trouble.READ_ONLY,
    sqlite3.SQLITE_IOERR: Trouble.IO_ERROR,
    sqlite3.SQLITE_CANTOPEN: Trouble.IO_ERROR,
    sqlite3.SQLITE_CORRUPT: Trouble.CORRUPT,
    sqlite3.SQLITE_NOTADB: Trouble.CORRUPT,
}


def _sqlite_trouble(exc: sqlite3.Error) -> Trouble | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else _SQLITE_TROUBLE.get(code & 0xFF)


def _os_trouble(exc: OSError) -> Trouble | None:
    if disk.is_full(exc):
        return Trouble.DISK_FULL
    if exc.errno == errno.EROFS:
        return Trouble.READ_ONLY
    if exc.errno == errno.EIO:
        return Trouble.IO_ERROR
    return None


def _again(problem: StoreUnavailable | None) -> StoreUnavailable:
    """A fresh exception for the trouble as it stands (one raised twice grows its traceback)."""
    assert problem is not None
    return StoreUnavailable(problem.trouble, problem.path, problem.detail)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _count(counts: dict[str, int], state: str, delta: int) -> None:
    counts[state] = counts.get(state, 0) + delta


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _to_row(run: Run) -> list[Any]:
    values: dict[str, Any] = {column: getattr(run, column) for column in COLUMNS}
    for key in ("state", "permission", "activity", "error_kind"):
        values[key] = None if values[key] is None else str(values[key])
    values["tokens"] = json.dumps(run.tokens.to_json()) if run.tokens else None
    values["denials"] = json.dumps([denial.to_json() for denial in run.denials])
    values["worktree"] = json.dumps(run.worktree.to_json()) if run.worktree else None
    values["changes"] = json.dumps(run.changes.to_json()) if run.changes else None
    return [values[column] for column in COLUMNS]


def _to_run(row: Sequence[Any]) -> Run:
    values = dict(zip(COLUMNS, row, strict=True))
    values["state"] = RunState(values["state"])
    # Values this version does not know (written by a newer one) read as unknown, not as errors.
    values["permission"] = _enum(Permission, values["permission"])
    values["activity"] = _enum(Activity, values["activity"])
    values["error_kind"] = _enum(FailureKind, values["error_kind"])
    tokens = json.loads(values["tokens"]) if values["tokens"] else None
    values["tokens"] = Tokens(**tokens) if isinstance(tokens, dict) else None
    denials = json.loads(values["denials"] or "[]")
    values["denials"] = tuple(Denial(**d) for d in denials if isinstance(d, dict))
    values["worktree"] = _worktree(values["worktree"])
    changes = json.loads(values["changes"]) if values["changes"] else None
    values["changes"] = Changes.from_json(changes) if isinstance(changes, dict) else None
    return Run(**values)


def _worktree(raw: str | None) -> Worktree | None:
    data = json.loads(raw) if raw else None
    if not isinstance(data, dict):
        return None
    try:
        return Worktree(
            path=str(data["path"]),
            branch=str(data["branch"]),
            base=str(data["base"]),
            source=None if data.get("source") is None else str(data["source"]),
            repo=str(data.get("repo") or ""),
            state=_enum(WorktreeState, data.get("state")) or WorktreeState.OPEN,
        )
    except KeyError:
        return None


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: str | None) -> E | None:
    try:
        return None if value is None else kind(value)
    except ValueError:
        return None
