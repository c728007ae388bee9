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
import json
import logging
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from aios import private
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
_INSERT = f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({_MARKS})"  # noqa: S608
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


@dataclass(frozen=True)
class Usage:
    tokens: Tokens
    cost_usd: float | None  # None: no run reported a cost


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
        self._logs: dict[tuple[str, Stream], _Log] = {}  # touched only on the worker
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
        if runs or close_logs:
            pruned = await self._call(partial(self._save_and_close, list(runs), list(close_logs)))
        for run_id, pending in writes:
            for write in pending:  # done: they were queued before the close
                try:
                    await self._settle(write)
                except StoreError as exc:
                    logger.error("writing the output of run %s failed: %s", run_id, exc)
        return pruned

    async def update(self, run: Run) -> bool:
        """Update ``run`` only if history still holds it (never brings a deleted run back)."""
        return await self._call(partial(self._update, run))

    async def with_worktree(self, path: str) -> builtins.list[Run]:
        """The runs whose worktree is at ``path`` (a continued run shares its parent's)."""
        where = "WHERE json_extract(worktree, '$.path') = ? ORDER BY seq"
        return await self._call(partial(self._select, where, (path,)))

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
            await self._settle(writes.popleft())

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
            _make_private(self.database, self.logs_dir)
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

    def _save_and_close(
        self, runs: builtins.list[Run], close: builtins.list[str]
    ) -> builtins.list[Run]:
        try:
            return self._save(runs) if runs else []
        finally:
            for run_id in close:
                self._close_log(run_id)

    def _save(self, runs: Iterable[Run]) -> builtins.list[Run]:
        counts = dict(self._counts)  # applied only once the transaction has committed
        pruned: builtins.list[Run] = []
        with _transaction(self._conn) as db:
            for run in runs:
                values = _to_row(run)
                state = values[COLUMNS.index("state")]
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
        for old in pruned:
            self._forget_log(old.id)
        return pruned

    def _update(self, run: Run) -> bool:
        values = _to_row(run)
        with _transaction(self._conn) as db:
            row = db.execute("SELECT state FROM runs WHERE id = ?", (run.id,)).fetchone()
            if row is None:
                return False
            db.execute(_UPDATE, [*values[1:], run.id])
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

    def _append_log(self, run_id: str, data: bytes, stream: Stream) -> None:
        log = self._logs.get((run_id, stream))
        if log is None:
            file = private.open_append(self._log_path(run_id, stream))
            log = self._logs[run_id, stream] = _Log(file, file.tell())
        # Past the cap means the marker is already there (this run or an earlier daemon wrote it).
        if log.size > self.log_cap_bytes or not data:
            return
        room = self.log_cap_bytes - log.size
        kept = data if len(data) <= room else data[:room]  # no copy of a chunk that fits
        log.file.write(kept)
        log.size += len(kept)
        if len(kept) < len(data):
            marker = self._marker if stream == "log" else _EVENTS_MARKER
            log.file.write(marker)
            log.size += len(marker)
        # read_log uses its own handle, so nothing may sit in our buffer.
        log.file.flush()

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
        private.write_bytes(partial_path, data)  # 0600 from the start, like every log
        partial_path.replace(path)

    def _close_log(self, run_id: str) -> None:
        for stream in _SUFFIXES:
            log = self._logs.pop((run_id, stream), None)
            if log is not None:
                log.file.close()

    def _forget_log(self, run_id: str) -> None:
        self._close_log(run_id)
        for stream in _SUFFIXES:
            self._log_path(run_id, stream).unlink(missing_ok=True)


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
