"""What can go wrong with the run history, by name: the store's exceptions, and the kinds of
storage trouble (a full disk, a failing database) told apart from AIOS's own errors.

Exceptions::

    StoreError            the database or a log file could not be used (the message names it)
    ├── UnknownRun        no run has that id (or id prefix)
    ├── AmbiguousRun      an id prefix matches more than one run
    └── StoreUnavailable  the disk is full, or the database is read-only, failing or damaged:
                          not AIOS's fault, and said so

``Trouble`` is that last kind, read from an ``sqlite3.Error`` (``sqlite_trouble``) or an
``OSError`` (``os_trouble``); trouble in ``PASSING`` goes away by itself, a full disk when space
is found, a damaged file never.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from aios import disk


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
    what to do. (The server answers it with 507 or 503: ``aios.server.errors.STATUS``.)"""

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


# Trouble that passes by itself (a file system remounted writable); a full disk passes when
# space is found (Store.retry), a damaged file never.
PASSING = frozenset({Trouble.READ_ONLY, Trouble.IO_ERROR})
_SQLITE_TROUBLE = {
    sqlite3.SQLITE_FULL: Trouble.DISK_FULL,
    sqlite3.SQLITE_READONLY: Trouble.READ_ONLY,
    sqlite3.SQLITE_IOERR: Trouble.IO_ERROR,
    sqlite3.SQLITE_CANTOPEN: Trouble.IO_ERROR,
    sqlite3.SQLITE_CORRUPT: Trouble.CORRUPT,
    sqlite3.SQLITE_NOTADB: Trouble.CORRUPT,
}


def sqlite_trouble(exc: sqlite3.Error) -> Trouble | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else _SQLITE_TROUBLE.get(code & 0xFF)


def os_trouble(exc: OSError) -> Trouble | None:
    if disk.is_full(exc):
        return Trouble.DISK_FULL
    if exc.errno == errno.EROFS:
        return Trouble.READ_ONLY
    if exc.errno == errno.EIO:
        return Trouble.IO_ERROR
    return None
