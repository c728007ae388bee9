"""The run history's records: saving, listing, resolving, pruning and deleting runs (the
package's docstring says how it works)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from aios import disk
from aios.runs import Run, RunState, Tokens
from aios.store.errors import (
    PASSING,
    AmbiguousRun,
    StoreError,
    StoreUnavailable,
    Trouble,
    UnknownRun,
    again,
    sqlite_trouble,
)
from aios.store.logs import LogFile, LogFiles, MiB, Stream, Wrote
from aios.store.schema import (
    COLUMNS,
    FINAL,
    LIVE,
    SCHEMA_VERSION,
    SELECT,
    UPDATE,
    UPSERT,
    connect,
    make_private,
    tally,
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


class Store(LogFiles):
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
        self._logs: dict[tuple[str, Stream], LogFile] = {}  # touched only on the worker
        self._writes: dict[str, deque[asyncio.Future[Wrote]]] = {}  # log writes not yet awaited
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

    # -- trouble: a full disk, a failing database ------------------------------------------

    async def retry(self) -> StoreUnavailable | None:
        """Write what could not be written, and see whether the trouble has passed; returns the
        trouble that remains (None: none)."""
        if self.problem is None or self._closed:
            return self.problem
        reconnect = self.problem.trouble in PASSING
        with contextlib.suppress(StoreUnavailable):
            await self._call(partial(self._flush, reconnect=reconnect), write=True)
            if self.problem is not None and self.problem.trouble is Trouble.DISK_FULL:
                free = disk.free_bytes(self.logs_dir)
                if free is None or free >= disk.MIN_FREE:
                    self._set_problem(None)
        return self.problem

    async def check_writable(self) -> None:
        """Raise StoreUnavailable if history cannot take a new run now (tried again first, and
        the free space looked at: a system call)."""
        if self.problem is not None and await self.retry() is not None:
            raise again(self.problem)
        free = disk.free_bytes(self.logs_dir)
        if free is not None and free < disk.MIN_FREE:
            detail = f"{free} bytes free"
            self._set_problem(StoreUnavailable(Trouble.DISK_FULL, self.logs_dir, detail))
            raise again(self.problem)

    # -- on the worker thread -------------------------------------------------------------

    def _open(self) -> builtins.list[Run]:
        if self._db is None:
            make_private(self.database, self.logs_dir)
            self._db = connect(self.database)
            self._opened = True
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
            self._counts = {state: count for state, count in rows}
            self._publish_counts()
        marks = ", ".join("?" * len(LIVE))
        return self._select(f"WHERE state IN ({marks}) ORDER BY seq", LIVE)

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
        rows = self._conn.execute(f"{SELECT} {where}", params).fetchall()
        runs = (to_run(row) for row in rows)
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
            self._db = connect(self.database)
        if self._doomed:
            with transaction(self._conn) as db:
                db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in self._doomed])
            self._doomed.clear()
        if self._unsaved:
            self._save([])
        else:
            with transaction(self._conn) as db:
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
                    tally(counts, before, -1)
                tally(counts, str(run.state), +1)
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
        values = to_row(run)
        try:
            with transaction(self._conn) as db:
                row = db.execute("SELECT state FROM runs WHERE id = ?", (run.id,)).fetchone()
                if row is None:
                    return False
                db.execute(UPDATE, [*values[1:], run.id])
        except sqlite3.Error as exc:
            if sqlite_trouble(exc) is not None and self._get(run.id) is not None:
                self._save([run])  # kept as unsaved, and counted, if it still fails
            raise
        if row[0] != values[COLUMNS.index("state")]:
            tally(self._counts, row[0], -1)
            tally(self._counts, values[COLUMNS.index("state")], +1)
            self._publish_counts()
        return True

    def _prune(self, db: sqlite3.Connection, counts: dict[str, int]) -> builtins.list[Run]:
        # Live runs are never pruned, so the history may stay above retention while they last.
        excess = sum(counts.values()) - self.retention
        if excess <= 0:
            return []
        marks = ", ".join("?" * len(FINAL))
        runs = self._select(f"WHERE state IN ({marks}) ORDER BY seq LIMIT ?", (*FINAL, excess))
        db.executemany("DELETE FROM runs WHERE id = ?", [(run.id,) for run in runs])
        for run in runs:
            tally(counts, str(run.state), -1)
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
            tally(self._counts, str(run.state), -1)
            self._publish_counts()
            return None
        try:
            # fetchall: the statement must run to its end, or the write would stay open.
            rows = self._conn.execute(
                "DELETE FROM runs WHERE id = ? RETURNING state", (run_id,)
            ).fetchall()
        except sqlite3.Error as exc:
            if sqlite_trouble(exc) is None or (gone := self._get(run_id)) is None:
                raise
            self._unsaved.pop(run_id, None)
            self._doomed.add(run_id)  # read as gone; deleted at the next write that works
            tally(self._counts, str(gone.state), -1)
            self._publish_counts()
            return exc
        self._unsaved.pop(run_id, None)
        if not rows:
            raise UnknownRun(run_id)
        tally(self._counts, rows[0][0], -1)
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
