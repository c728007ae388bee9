"""The run records in the history database, as the store's worker thread reads and writes them.

Only that one thread touches this, one job at a time: one connection, no locking of our own.

When the database cannot be written (``sqlite_trouble``: the disk is full, the database is
read-only, gives I/O errors or is damaged), nothing is lost from what the daemon knows: run
records that could not be written are kept (``_unsaved``) and read back as they are, deletes
that could not be made are remembered (``_doomed``), and both are written at the next write or
``flush``. The sqlite3 error is still raised, for the store to translate and report.

The runs per state are kept in memory, updated by every write (written or kept), and published
as a fresh dict (``summary``) that any thread may read without a query: a GROUP BY over a long
history takes longer than the rest of a page.

Raises (see ``aios.store_errors``): ``UnknownRun``, ``AmbiguousRun``, ``StoreError`` (not open),
``StoreUnavailable`` (a file found damaged by ``look``), and sqlite3 errors as they come.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aios import disk
from aios.runs import Run, RunState, Tokens
from aios.store_errors import (
    AmbiguousRun,
    StoreError,
    StoreUnavailable,
    Trouble,
    UnknownRun,
    sqlite_trouble,
)
from aios.store_schema import (
    FINAL,
    LIVE,
    SCHEMA_VERSION,
    SELECT,
    STATE,
    UPDATE,
    UPSERT,
    check_database,
    connect,
    make_private,
    to_row,
    to_run,
    transaction,
)

T = TypeVar("T")
logger = logging.getLogger("aios.store")

CHAIN_MAX = 200  # runs shown as one conversation; a longer chain starts at its newest 200


@dataclass(frozen=True)
class Usage:
    tokens: Tokens
    cost_usd: float | None  # None: no run reported a cost


class Database:
    """``forget`` deletes the files of a run that leaves history (deleted or pruned)."""

    def __init__(self, path: Path, *, retention: int, forget: Callable[[str], None]) -> None:
        self.path = path
        self.retention = retention
        self._forget = forget
        self._db: sqlite3.Connection | None = None
        # Run records kept until they can be written (those never inserted in _unsaved_new),
        # and runs deleted whose rows are still there. Both are read as if written.
        self._unsaved: dict[str, Run] = {}
        self._unsaved_new: set[str] = set()
        self._doomed: set[str] = set()
        # The database file as our last job left it: a change nobody here made means something
        # else wrote it (look), and a file found damaged is never read again.
        self._seen: tuple[int, int, int] | None = None
        self._damaged: StoreUnavailable | None = None
        self._opened = False  # open() succeeded and close() has not been called
        self._counts: dict[str, int] = {}  # runs per state
        # The stored state of each run this store wrote while it was live: a run's every step
        # would otherwise cost a SELECT to learn what it was before (for the counts).
        self._live: dict[str, str] = {}
        # A copy of _counts, replaced (never changed) after each write: readers on any thread
        # take the reference, which is atomic.
        self.summary: dict[str, int] = {"total": 0}

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._damaged is not None:
            damaged = sqlite3.DatabaseError(self._damaged.detail)
            damaged.sqlite_errorcode = sqlite3.SQLITE_CORRUPT  # read as SQLite's own
            raise damaged
        if self._db is None and self._opened:  # a reconnection that failed: try again
            self._db = connect(self.path)
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    def job(self, job: Callable[[], T]) -> T:
        """Run a job; the database file as it leaves it is ours (see look)."""
        try:
            return job()
        except sqlite3.Error as exc:
            # SQLite says "disk I/O error" for a read-only file system too: look (here, on
            # the worker: it may create a file) so that the user is told which.
            if sqlite_trouble(exc) is Trouble.IO_ERROR and disk.read_only(self.path):
                exc.read_only = True  # type: ignore[attr-defined]
            raise
        finally:
            self._seen = _identity(self.path)

    def look(self) -> None:
        """Check the file if something else than us changed it; damage found is kept."""
        if self._db is None or self._damaged is not None:
            return
        seen = _identity(self.path)
        if seen == self._seen:
            return
        logger.warning("the history database %s was changed by another program", self.path)
        try:
            check_database(self.path)
        except StoreUnavailable as exc:
            if exc.trouble is Trouble.CORRUPT:
                self._damaged = StoreUnavailable(exc.trouble, exc.path, exc.detail)
                raise self._damaged from exc
            raise
        self._seen = seen

    def open(self) -> builtins.list[Run]:
        """Open (creating or migrating) the database; returns the runs left in a live state."""
        if self._db is None:
            make_private(self.path)
            self._db = connect(self.path)
            self._opened = True
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
            self._counts = {state: count for state, count in rows}
            self._publish_counts()
        marks = ", ".join("?" * len(LIVE))
        return self._select(f"WHERE state IN ({marks}) ORDER BY seq", LIVE)

    def close(self) -> None:
        if self._unsaved or self._doomed:
            with contextlib.suppress(sqlite3.Error, StoreError):
                self.flush()
        if self._unsaved or self._doomed:
            logger.error(
                "%d run records and %d deletes could not be written to %s; the runs that were "
                "live will show as interrupted at the next start",
                len(self._unsaved),
                len(self._doomed),
                self.path,
            )
        self._opened = False
        if self._db is not None:
            self._db.close()
            self._db = None

    def flush(self, *, reconnect: bool = False) -> None:
        """Write what could not be written (or, with nothing waiting, one harmless write: has
        the trouble passed?). ``reconnect``: on a connection of its own first (one that had
        I/O errors may keep failing, and the file system may have been mounted again)."""
        if reconnect and self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
            self._db = connect(self.path)
        if self._doomed:
            with transaction(self._conn) as db:
                db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in self._doomed])
            self._doomed.clear()
        if self._unsaved:
            self.save([])
        else:
            with transaction(self._conn) as db:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def save(self, runs: Iterable[Run]) -> builtins.list[Run]:
        """Insert or update ``runs`` in one transaction; returns the runs pruned to make room."""
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
                before = known[run.id] if run.id in known else self._stored_before(run)
                if before is None:
                    new.add(run.id)
                else:
                    _count(counts, before, -1)
                _count(counts, str(run.state), +1)
                known[run.id] = str(run.state)
            with transaction(self._conn) as db:
                # An upsert: a run kept unsaved may or may not have its row by now.
                db.executemany(UPSERT, [to_row(run) for run in batch.values()])
                if new:
                    pruned = self._prune(db, counts)
        except sqlite3.Error as exc:
            if sqlite_trouble(exc) is None:
                raise
            self._unsaved, self._unsaved_new = batch, new
            self._counts = counts
            self._publish_counts()
            raise
        self._unsaved, self._unsaved_new = {}, set()
        self._counts = counts
        self._publish_counts()
        for run in batch.values():
            if run.state.is_live:
                self._live[run.id] = str(run.state)
            else:
                self._live.pop(run.id, None)
        for old in pruned:
            self._forget(old.id)
        return pruned

    def update(self, run: Run) -> bool:
        """Update ``run`` only if history still holds it (never brings a deleted run back)."""
        if run.id in self._doomed:
            return False
        if run.id in self._unsaved:
            self.save([run])
            return True
        values = to_row(run)
        try:
            with transaction(self._conn) as db:
                row = db.execute("SELECT state FROM runs WHERE id = ?", (run.id,)).fetchone()
                if row is None:
                    return False
                db.execute(UPDATE, [*values[1:], run.id])
        except sqlite3.Error as exc:
            if sqlite_trouble(exc) is not None and self.get(run.id) is not None:
                self.save([run])  # kept as unsaved, and counted, if it still fails
            raise
        if row[0] != values[STATE]:
            _count(self._counts, row[0], -1)
            _count(self._counts, values[STATE], +1)
            self._publish_counts()
        return True

    def delete(self, run_id: str) -> sqlite3.Error | None:
        """None, or the error that keeps the row for now (the run reads as deleted)."""
        if run_id in self._doomed:
            raise UnknownRun(run_id)
        # Its files first: on a full disk they are the space that lets the rest be written.
        self._forget(run_id)
        self._live.pop(run_id, None)
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
            if sqlite_trouble(exc) is None or (gone := self.get(run_id)) is None:
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

    def get(self, run_id: str) -> Run | None:
        if run_id in self._unsaved_new:
            return self._unsaved[run_id]
        runs = self._select("WHERE id = ?", (run_id,))
        return runs[0] if runs else None

    def with_worktree(self, path: str) -> builtins.list[Run]:
        return self._select("WHERE json_extract(worktree, '$.path') = ? ORDER BY seq", (path,))

    def list(
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

    def resolve(self, prefix: str) -> Run:
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

    def chain(self, run_id: str) -> builtins.list[Run]:
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

    def usage(self) -> Usage:
        row = self._conn.execute(
            "SELECT SUM(cost_usd), SUM(json_extract(tokens, '$.input')),"
            " SUM(json_extract(tokens, '$.output')), SUM(json_extract(tokens, '$.cached'))"
            " FROM runs"
        ).fetchone()
        cost, tokens_in, tokens_out, cached = row
        return Usage(Tokens(int(tokens_in or 0), int(tokens_out or 0), int(cached or 0)), cost)

    def _select(self, where: str, params: Sequence[object]) -> builtins.list[Run]:
        rows = self._conn.execute(f"{SELECT} {where}", params).fetchall()
        runs = (to_run(row) for row in rows)
        if not self._unsaved and not self._doomed:
            return list(runs)
        return [self._unsaved.get(r.id, r) for r in runs if r.id not in self._doomed]

    def _stored_before(self, run: Run) -> str | None:
        if (state := self._live.get(run.id)) is not None:
            return state
        if run.state is RunState.QUEUED:  # a new run: one saved before would be in _live
            return None
        return self._stored_state(run.id)  # a run that ended, or one a previous daemon left

    def _stored_state(self, run_id: str) -> str | None:
        row = self._conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def _prune(self, db: sqlite3.Connection, counts: dict[str, int]) -> builtins.list[Run]:
        # Live runs are never pruned, so the history may stay above retention while they last.
        excess = sum(counts.values()) - self.retention
        if excess <= 0:
            return []
        marks = ", ".join("?" * len(FINAL))
        runs = self._select(f"WHERE state IN ({marks}) ORDER BY seq LIMIT ?", (*FINAL, excess))
        db.executemany("DELETE FROM runs WHERE id = ?", [(run.id,) for run in runs])
        for run in runs:
            _count(counts, str(run.state), -1)
        return runs

    def _publish_counts(self) -> None:
        summary = {state: count for state, count in self._counts.items() if count}
        summary["total"] = sum(summary.values())
        self.summary = summary


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _count(counts: dict[str, int], state: str, delta: int) -> None:
    counts[state] = counts.get(state, 0) + delta
