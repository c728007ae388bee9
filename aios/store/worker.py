"""The store's one worker thread, and the trouble it meets (a full disk, a failing or damaged
database): every job goes through :meth:`Worker._call`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from aios import disk
from aios.store.errors import (
    PASSING,
    StoreError,
    StoreUnavailable,
    Trouble,
    os_trouble,
    sqlite_trouble,
)
from aios.store.schema import check_database, connect, identity

T = TypeVar("T")
logger = logging.getLogger("aios.store")


class Worker:
    """The part of :class:`aios.store.Store` that hands jobs to its thread and keeps ``problem``;
    the attributes are the Store's (set in its ``__init__``)."""

    database: Path
    logs_dir: Path
    problem: StoreUnavailable | None
    on_problem: Callable[[StoreUnavailable | None], None] | None
    _executor: ThreadPoolExecutor
    _db: sqlite3.Connection | None
    _opened: bool
    _closed: bool
    _seen: tuple[int, int, int] | None
    _damaged: StoreUnavailable | None

    async def watch(self) -> None:
        """Notice a database file changed by something else than us (a stat), and if it was,
        check it (``quick_check`` on a connection of its own: ours has its pages cached);
        damage found becomes the problem, and every later use of the database answers so."""
        with contextlib.suppress(StoreUnavailable):
            await self._call(self._look, track=False)

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
            trouble = Trouble.READ_ONLY  # SQLite said "disk I/O error"; _job looked why
        problem = StoreUnavailable(trouble, path, str(exc))
        self._set_problem(problem)
        return problem

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
        if self.problem is not None and self.problem.trouble in PASSING:
            self._set_problem(None)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._damaged is not None:
            damaged = sqlite3.DatabaseError(self._damaged.detail)
            damaged.sqlite_errorcode = sqlite3.SQLITE_CORRUPT  # read as SQLite's own
            raise damaged
        if self._db is None and self._opened:  # a reconnection that failed: try again
            self._db = connect(self.database)
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
            if sqlite_trouble(exc) is Trouble.IO_ERROR and disk.read_only(self.database):
                exc.read_only = True  # type: ignore[attr-defined]
            raise
        finally:
            self._seen = identity(self.database)

    def _look(self) -> None:
        if self._db is None or self._damaged is not None:
            return
        seen = identity(self.database)
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
