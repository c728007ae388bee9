"""The history database's file: its schema and migrations, opening it, checking it, and the
conversion between a row and a ``Run``.

Durability: WAL with ``synchronous = NORMAL``. A committed change is in the WAL file before
``save`` returns, so it survives the daemon crashing or being killed in any way, and the
database is never corrupted; only a power loss or an OS crash can take back the last changes
since the WAL was last synced (at each checkpoint). ``FULL`` would fsync every state change,
3-4 ms each on our machines - more than the whole budget from an agent's exit to its event
(docs/performance.md).

Raises (see ``aios.store_errors``): ``StoreError`` for a database that is not ours or is newer,
``StoreUnavailable`` for one that cannot be used (read-only, failing, damaged).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

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
from aios.store_errors import StoreError, StoreUnavailable, Trouble, sqlite_trouble

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
    # 4: a run may have a pseudo-terminal (its final screen is a file beside its log).
    ("ALTER TABLE runs ADD COLUMN terminal INTEGER NOT NULL DEFAULT 0",),
]
SCHEMA_VERSION = len(MIGRATIONS)

# The fields of Run that are persisted; cpu_percent and rss_bytes are live samples only.
COLUMNS = (
    "id", "agent", "prompt", "cwd", "state", "pid", "exit_code",
    "created_at", "started_at", "ended_at", "restarts", "error", "pid_started_at",
    "permission", "format", "activity", "activity_detail", "session_id", "model", "tokens",
    "cost_usd", "num_turns", "denials", "error_kind", "hint", "parent", "worktree", "changes",
    "terminal",
)  # fmt: skip
# Only our own column names are interpolated into SQL; values always go through "?".
SELECT = f"SELECT {', '.join(COLUMNS)} FROM runs"  # noqa: S608
_MARKS = ", ".join("?" * len(COLUMNS))
UPSERT = (
    f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({_MARKS}) "  # noqa: S608
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:])}"
)
UPDATE = f"UPDATE runs SET {', '.join(f'{c} = ?' for c in COLUMNS[1:])} WHERE id = ?"  # noqa: S608
STATE = COLUMNS.index("state")
FINAL = tuple(str(state) for state in FINAL_STATES)
LIVE = tuple(str(state) for state in RunState if state.is_live)


def make_private(database: Path) -> None:
    """History is the user's alone: a 0600 file in a 0700 directory, also one an older version
    left readable. SQLite gives its -wal and -shm files the database's mode."""
    private.ensure_private_dir(database.parent)
    private.create(database)
    private.tighten_all(private.sqlite_files(database))


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we write BEGIN/COMMIT ourselves rather than rely on sqlite3's guesses.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        if (trouble := sqlite_trouble(exc)) is not None:
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
        with transaction(db):
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
        trouble = sqlite_trouble(exc)
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


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def to_row(run: Run) -> list[Any]:
    values: dict[str, Any] = {column: getattr(run, column) for column in COLUMNS}
    for key in ("state", "permission", "activity", "error_kind"):
        values[key] = None if values[key] is None else str(values[key])
    values["tokens"] = json.dumps(run.tokens.to_json()) if run.tokens else None
    values["denials"] = json.dumps([denial.to_json() for denial in run.denials])
    values["worktree"] = json.dumps(run.worktree.to_json()) if run.worktree else None
    values["changes"] = json.dumps(run.changes.to_json()) if run.changes else None
    return [values[column] for column in COLUMNS]


def to_run(row: Sequence[Any]) -> Run:
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
    values["terminal"] = bool(values["terminal"])
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
