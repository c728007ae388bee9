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

Exceptions::

    StoreError            the database or a log file could not be used (the message names it)
    ├── UnknownRun        no run has that id (or id prefix)
    └── AmbiguousRun      an id prefix matches more than one run
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from aios.runs import FINAL_STATES, Run, RunState

T = TypeVar("T")
logger = logging.getLogger("aios.store")

MiB = 1024 * 1024
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
]
SCHEMA_VERSION = len(MIGRATIONS)

# The fields of Run that are persisted; cpu_percent and rss_bytes are live samples only.
COLUMNS = (
    "id", "agent", "prompt", "cwd", "state", "pid", "exit_code",
    "created_at", "started_at", "ended_at", "restarts", "error", "pid_started_at",
)  # fmt: skip
# Only our own column names are interpolated into SQL; values always go through "?".
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM runs"  # noqa: S608
_MARKS = ", ".join("?" * len(COLUMNS))
_INSERT = f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({_MARKS})"  # noqa: S608
_UPDATE = f"UPDATE runs SET {', '.join(f'{c} = ?' for c in COLUMNS[1:])} WHERE id = ?"  # noqa: S608
_FINAL = tuple(str(state) for state in FINAL_STATES)
_LIVE = tuple(str(state) for state in RunState if state.is_live)
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


@dataclass
class _Log:
    file: BinaryIO
    size: int


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
        self._logs: dict[str, _Log] = {}  # touched only on the worker
        self._writes: dict[str, deque[asyncio.Future[None]]] = {}  # log writes not yet awaited
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

    async def save(self, run: Run) -> None:
        await self._call(partial(self._save, [run]))

    async def save_many(self, runs: Sequence[Run], *, close_logs: Sequence[str] = ()) -> None:
        """Save several runs in one transaction (one commit for a batch of state changes), and
        close the logs of ``close_logs`` (runs that ended) in the same trip to the worker.

        A write to one of those logs that had failed is logged, not raised: the state change
        is what the caller is about, and it was saved.
        """
        writes = [(run_id, self._writes.pop(run_id, deque())) for run_id in close_logs]
        if runs or close_logs:
            await self._call(partial(self._save_and_close, list(runs), list(close_logs)))
        for run_id, pending in writes:
            for write in pending:  # done: they were queued before the close
                try:
                    await self._settle(write)
                except StoreError as exc:
                    logger.error("writing the output of run %s failed: %s", run_id, exc)

    async def get(self, run_id: str) -> Run | None:
        runs = await self._call(partial(self._select, "WHERE id = ?", (run_id,)))
        return runs[0] if runs else None

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
        """Forget a run and its log; raises UnknownRun if there was no such row."""
        await self._call(partial(self._delete, run_id))

    async def counts(self) -> dict[str, int]:
        """Runs per state (only states that occur), plus "total"."""
        return self.summary()

    def summary(self) -> dict[str, int]:
        """Runs per state (only states that occur), plus "total", as of the last completed write.

        Safe from any thread, and immediate: it is kept in memory, not queried.
        """
        return dict(self._summary)

    # -- logs -------------------------------------------------------------------------------

    async def append_log(self, run_id: str, data: bytes) -> None:
        """Append to the run's log. Returns once the write is queued, unless ``WRITES_AHEAD``
        writes of this run are still waiting, then once the oldest is done: reading the next
        chunk overlaps writing this one, while a flooding agent still waits on its pipe (it
        is not read) rather than our memory growing. A write that failed is raised by the
        next ``append_log`` or ``close_log`` of the run."""
        if self._closed:
            raise StoreError("the store is closed")
        if not _SAFE_ID.fullmatch(run_id):
            raise UnknownRun(run_id)  # here, not later: a path must never be queued
        writes = self._writes.setdefault(run_id, deque())
        loop = asyncio.get_running_loop()
        writes.append(loop.run_in_executor(self._executor, self._append_log, run_id, data))
        while len(writes) > WRITES_AHEAD or (writes and writes[0].done()):
            await self._settle(writes.popleft())

    async def read_log(self, run_id: str, offset: int = 0, limit: int | None = None) -> bytes:
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        return await self._call(partial(self._read_log, run_id, offset, limit))

    async def log_size(self, run_id: str) -> int:
        return await self._call(partial(self._log_size, run_id))

    async def close_log(self, run_id: str) -> None:
        writes = self._writes.pop(run_id, deque())
        try:
            while writes:
                await self._settle(writes.popleft())
        finally:
            await self._call(partial(self._close_log, run_id))

    async def _settle(self, write: asyncio.Future[None]) -> None:
        try:
            await write
        except OSError as exc:
            raise StoreError(str(exc)) from exc

    # -- the worker side: everything below runs on the store thread ------------------------

    async def _call(self, job: Callable[[], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)
        except sqlite3.Error as exc:
            raise StoreError(f"history database {self.database}: {exc}") from exc
        except OSError as exc:
            raise StoreError(str(exc)) from exc

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    def _open(self) -> builtins.list[Run]:
        if self._db is None:
            self.database.parent.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self._db = _connect(self.database)
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
            self._counts = {state: count for state, count in rows}
            self._publish_counts()
        marks = ", ".join("?" * len(_LIVE))
        return self._select(f"WHERE state IN ({marks}) ORDER BY seq", _LIVE)

    def _close(self) -> None:
        for log in self._logs.values():
            log.file.close()
        self._logs.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _select(self, where: str, params: Sequence[object]) -> builtins.list[Run]:
        rows = self._conn.execute(f"{_SELECT} {where}", params).fetchall()
        return [_to_run(row) for row in rows]

    def _save_and_close(self, runs: builtins.list[Run], close: builtins.list[str]) -> None:
        try:
            if runs:
                self._save(runs)
        finally:
            for run_id in close:
                self._close_log(run_id)

    def _save(self, runs: Iterable[Run]) -> None:
        counts = dict(self._counts)  # applied only once the transaction has committed
        pruned: builtins.list[str] = []
        with _transaction(self._conn) as db:
            for run in runs:
                values = [getattr(run, column) for column in COLUMNS]
                values[COLUMNS.index("state")] = state = str(run.state)
                row = db.execute("SELECT state FROM runs WHERE id = ?", (run.id,)).fetchone()
                if row is not None:
                    db.execute(_UPDATE, [*values[1:], run.id])
                    _count(counts, row[0], -1)
                else:
                    db.execute(_INSERT, values)
                _count(counts, state, +1)
                if row is None:
                    pruned += self._prune(db, counts)
        self._counts = counts
        self._publish_counts()
        for run_id in pruned:
            self._forget_log(run_id)

    def _prune(self, db: sqlite3.Connection, counts: dict[str, int]) -> builtins.list[str]:
        # Live runs are never pruned, so the history may stay above retention while they last.
        excess = sum(counts.values()) - self.retention
        if excess <= 0:
            return []
        marks = ", ".join("?" * len(_FINAL))
        rows = db.execute(
            f"SELECT id, state FROM runs WHERE state IN ({marks}) ORDER BY seq LIMIT ?",  # noqa: S608
            (*_FINAL, excess),
        ).fetchall()
        db.executemany("DELETE FROM runs WHERE id = ?", [(run_id,) for run_id, _ in rows])
        for _, state in rows:
            _count(counts, state, -1)
        return [run_id for run_id, _ in rows]

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
        return self._select(f"{where} ORDER BY seq DESC LIMIT ?", [*params, limit])

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

    def _delete(self, run_id: str) -> None:
        # fetchall: the statement must run to its end, or the write would stay open.
        rows = self._conn.execute(
            "DELETE FROM runs WHERE id = ? RETURNING state", (run_id,)
        ).fetchall()
        self._forget_log(run_id)
        if not rows:
            raise UnknownRun(run_id)
        _count(self._counts, rows[0][0], -1)
        self._publish_counts()

    def _log_path(self, run_id: str) -> Path:
        if not _SAFE_ID.fullmatch(run_id):
            raise UnknownRun(run_id)
        return self.logs_dir / f"{run_id}.log"

    def _append_log(self, run_id: str, data: bytes) -> None:
        log = self._logs.get(run_id)
        if log is None:
            file = self._log_path(run_id).open("ab")
            log = self._logs[run_id] = _Log(file, file.tell())
        # Past the cap means the marker is already there (this run or an earlier daemon wrote it).
        if log.size > self.log_cap_bytes or not data:
            return
        room = self.log_cap_bytes - log.size
        kept = data if len(data) <= room else data[:room]  # no copy of a chunk that fits
        log.file.write(kept)
        log.size += len(kept)
        if len(kept) < len(data):
            log.file.write(self._marker)
            log.size += len(self._marker)
        # read_log uses its own handle, so nothing may sit in our buffer.
        log.file.flush()

    def _read_log(self, run_id: str, offset: int, limit: int | None) -> bytes:
        try:
            with self._log_path(run_id).open("rb") as file:
                file.seek(offset)
                return file.read(-1 if limit is None else limit)
        except FileNotFoundError:
            return b""

    def _log_size(self, run_id: str) -> int:
        if run_id in self._logs:
            return self._logs[run_id].size
        try:
            return self._log_path(run_id).stat().st_size
        except FileNotFoundError:
            return 0

    def _close_log(self, run_id: str) -> None:
        log = self._logs.pop(run_id, None)
        if log is not None:
            log.file.close()

    def _forget_log(self, run_id: str) -> None:
        self._close_log(run_id)
        self._log_path(run_id).unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we write BEGIN/COMMIT ourselves rather than rely on sqlite3's guesses.
    db = sqlite3.connect(path, isolation_level=None)
    try:
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
    except BaseException:
        db.close()
        raise
    return db


def _count(counts: dict[str, int], state: str, delta: int) -> None:
    counts[state] = counts.get(state, 0) + delta


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _to_run(row: Sequence[Any]) -> Run:
    values = dict(zip(COLUMNS, row, strict=True))
    values["state"] = RunState(values["state"])
    return Run(**values)
