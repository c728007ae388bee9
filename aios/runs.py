"""A run: one task given to one agent, and the state machine it moves through.

This module sits at the bottom of the house: the store, the server, the tray and the CLI all use
it, and it imports nothing of theirs. The transitions are a table, not a trail of ``if``
statements, so the whole life of a run can be read in one place (docs/agents.md, "Run states")::

    queued → starting → running → succeeded | failed
               │  ↘ succeeded | failed        (ended within start_seconds: a failed start)
               ↘ stopping → stopped           (a run the user stops ends stopped)
    starting | running → backoff → starting   (restart = "on-failure")
    any live state → interrupted              (found at the next start after the daemon died)

Which transition happens when is decided by ``aios.agents.lifecycle``; this table only says
which ones can.
"""

from __future__ import annotations

import secrets
import signal
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_live(self) -> bool:
        return self not in FINAL_STATES


FINAL_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.INTERRUPTED}
)

_S = RunState
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    # A queued run the user stops never started: it goes straight to stopped.
    _S.QUEUED: frozenset({_S.STARTING, _S.STOPPED, _S.INTERRUPTED}),
    # starting → failed when the executable cannot be spawned at all, or the process ended
    # before start_seconds; → succeeded when it did its job that fast; → backoff to retry.
    _S.STARTING: frozenset(
        {_S.RUNNING, _S.SUCCEEDED, _S.FAILED, _S.BACKOFF, _S.STOPPING, _S.INTERRUPTED}
    ),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.STOPPING, _S.BACKOFF, _S.INTERRUPTED}),
    # A run asked to stop ends stopped whatever its exit code: the user chose to end it.
    _S.STOPPING: frozenset({_S.STOPPED, _S.INTERRUPTED}),
    # backoff → failed only when supervising it broke (the error says so).
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPED, _S.FAILED, _S.INTERRUPTED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.STOPPED: frozenset(),
    _S.INTERRUPTED: frozenset(),
}


class Permission(StrEnum):
    """What a run's agent may do in its directory, mapped to each CLI's own flags."""

    READ_ONLY = "read-only"
    EDIT = "edit"  # the default: change files in the run's directory
    FULL = "full"  # run anything without asking


class Activity(StrEnum):
    """What a live run is doing, read from its output (``None`` once it ended)."""

    STARTING = "starting"  # spawned, nothing heard yet
    WORKING = "working"
    RETRYING = "retrying"  # the agent retries its model API (detail: attempt, next try)
    OFFLINE = "offline"  # the agent waits for the network
    NEEDS_LOGIN = "needs_login"  # the agent waits for the user to log in
    STALLED = "stalled"  # no output at all for the agent's stall_after seconds
    AWAITING_APPROVAL = "awaiting_approval"  # the agent asks the user to allow a tool
    WAITING = "waiting"  # a two-way session between turns, waiting for the user's next message
    # A terminal run's program is quiet and blocked reading its terminal (docs/terminal.md).
    AWAITING_INPUT = "awaiting_input"


# Activities that call for the user: entering one publishes an ``attention`` event.
ATTENTION_ACTIVITIES = frozenset(
    {Activity.NEEDS_LOGIN, Activity.STALLED, Activity.OFFLINE, Activity.AWAITING_INPUT}
)


class FailureKind(StrEnum):
    """Why a run failed, when its output says (the hint is chosen from it)."""

    AUTH = "auth"  # not logged in, or a bad API key
    OFFLINE = "offline"  # the model API could not be reached
    API = "api"  # the model API answered with an error
    UNTRUSTED_DIR = "untrusted_dir"  # the CLI refuses the directory (codex outside git)
    CONFIG = "config"  # the CLI's own configuration is broken
    INPUT = "input"  # the CLI rejected its arguments or prompt
    TURN_LIMIT = "turn_limit"
    TOOL = "tool"  # a tool failed fatally
    SESSION_GONE = "session_gone"  # a resumed session no longer exists
    OTHER = "other"


@dataclass(frozen=True)
class Tokens:
    input: int = 0  # not served from a cache
    output: int = 0
    cached: int = 0  # input served from the provider's cache

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input, self.output + other.output, self.cached + other.cached
        )

    def to_json(self) -> dict[str, int]:
        return {"input": self.input, "output": self.output, "cached": self.cached}


@dataclass(frozen=True)
class Denial:
    """An action the agent was refused (it had no permission, and nobody could be asked)."""

    tool: str
    summary: str = ""

    def to_json(self) -> dict[str, str]:
        return {"tool": self.tool, "summary": self.summary}


class WorktreeState(StrEnum):
    """Where a run's git worktree stands (docs/agents.md, "Isolation")."""

    OPEN = "open"  # on disk: the agent works in it, or its changes wait for review
    REMOVED = "removed"  # the run changed nothing: removed with its branch when it ended
    MERGED = "merged"  # merged into the branch it came from; removed with its branch
    DISCARDED = "discarded"  # thrown away, branch and all, by the user


@dataclass(frozen=True)
class Worktree:
    """The git worktree a run works in, apart from the user's checkout."""

    path: str  # its top level, under AIOS's data directory
    branch: str  # aios/<run id>-<slug of the prompt>
    base: str  # the commit it started from (the checkout's HEAD at launch)
    source: str | None  # the branch then checked out, which merge goes into; None: detached
    repo: str  # the top level of the checkout it came from
    state: WorktreeState = WorktreeState.OPEN

    def to_json(self) -> dict[str, str | None]:
        return {
            "path": self.path,
            "branch": self.branch,
            "base": self.base,
            "source": self.source,
            "repo": self.repo,
            "state": str(self.state),
        }


class ChangeStatus(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True)
class FileChange:
    path: str
    status: ChangeStatus
    added: int | None  # lines; None for a binary file
    deleted: int | None

    def to_json(self) -> dict[str, str | int | None]:
        return {
            "path": self.path,
            "status": str(self.status),
            "added": self.added,
            "deleted": self.deleted,
        }


# A run's JSON goes out with every `run` event: a run that touched a whole tree lists only this
# many files, while the totals count them all.
MAX_LISTED_FILES = 500


@dataclass(frozen=True)
class Changes:
    """What a run changed in its git directory, recorded when it ended."""

    files: tuple[FileChange, ...] = ()  # at most MAX_LISTED_FILES of them, by path
    commits: int = 0  # commits made on top of the base
    file_count: int = 0  # every changed file, listed or not
    added: int = 0  # lines, over every file
    deleted: int = 0

    @classmethod
    def of(cls, files: list[FileChange], commits: int) -> Changes:
        ordered = sorted(files, key=lambda change: change.path)
        return cls(
            files=tuple(ordered[:MAX_LISTED_FILES]),
            commits=commits,
            file_count=len(ordered),
            added=sum(change.added or 0 for change in ordered),
            deleted=sum(change.deleted or 0 for change in ordered),
        )

    @property
    def empty(self) -> bool:
        return self.file_count == 0 and self.commits == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [change.to_json() for change in self.files],
            "commits": self.commits,
            "file_count": self.file_count,
            "added": self.added,
            "deleted": self.deleted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Changes:
        """Tolerant: a record written by another version reads as what it can be read as."""
        files = []
        for item in data.get("files") or []:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                continue
            try:
                status = ChangeStatus(str(item.get("status")))
            except ValueError:
                status = ChangeStatus.MODIFIED
            added, deleted = item.get("added"), item.get("deleted")
            files.append(
                FileChange(
                    item["path"],
                    status,
                    added if isinstance(added, int) else None,
                    deleted if isinstance(deleted, int) else None,
                )
            )
        numbers = {
            key: value if isinstance(value := data.get(key), int) else 0
            for key in ("commits", "file_count", "added", "deleted")
        }
        return cls(files=tuple(files), **numbers)


@dataclass(frozen=True)
class Approval:
    """A tool the agent asks the user to allow (two-way sessions): ``id`` is the agent's own."""

    id: str
    tool: str
    summary: str = ""
    always: bool = False  # the agent offers to allow it for the rest of its session too

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "tool": self.tool, "summary": self.summary, "always": self.always}


class IllegalTransition(Exception):
    def __init__(self, run_id: str, current: RunState, target: RunState) -> None:
        self.run_id = run_id
        self.current = current
        self.target = target
        super().__init__(f"run {run_id}: illegal transition {current} → {target}")


def check_transition(run_id: str, current: RunState, target: RunState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(run_id, current, target)


def new_run_id() -> str:
    """12 hex characters: short enough to type a prefix of, random enough never to collide."""
    return secrets.token_hex(6)


def signal_name(exit_code: int | None) -> str | None:
    """``SIGTERM`` for a process that signal ended (a negative exit code, as Python reports it);
    None for one that exited, or a signal this platform has no name for."""
    if exit_code is None or exit_code >= 0:
        return None
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return None


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Run:
    """A run's record: immutable, every field an immutable value. The lifecycle core
    (``aios.agents.lifecycle``) is its only writer: it makes each new snapshot with
    ``dataclasses.replace`` and hands it out; nothing else changes a run (tests/
    test_architecture_writes.py holds every module to that)."""

    id: str
    agent: str
    prompt: str
    cwd: str
    state: RunState = RunState.QUEUED
    pid: int | None = None
    exit_code: int | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    restarts: int = 0
    # Why a run failed, in words: a spawn error, or what its output said (even behind exit 0).
    error: str | None = None
    # The process start time of ``pid`` (psutil create_time), so a pid reused by an unrelated
    # process after a crash is never mistaken for our agent.
    pid_started_at: float | None = None
    # How the agent was asked to work, and how its output is read (a format name).
    permission: Permission | None = None  # None: the agent has no permission modes
    format: str = "text"
    # The run's program has a pseudo-terminal (docs/terminal.md): its output is a screen, and
    # viewers may type into it while it runs.
    terminal: bool = False
    # What the agent's output says (see aios.agents.formats).
    activity: Activity | None = None
    activity_detail: str | None = None
    session_id: str | None = None
    model: str | None = None
    tokens: Tokens | None = None
    cost_usd: float | None = None  # as the CLI reported it; never estimated
    num_turns: int | None = None
    denials: tuple[Denial, ...] = ()
    error_kind: FailureKind | None = None
    hint: str | None = None  # what to do about a failure, in one sentence
    # The run this one continues (same agent, directory and session): a conversation is a chain.
    parent: str | None = None
    # The git worktree the run works in (None: it works in its directory as it is), and what it
    # changed there (None: not in a git directory, or not recorded yet).
    worktree: Worktree | None = None
    changes: Changes | None = None
    # A two-way session's oldest unanswered request (not persisted: it dies with the process).
    pending_approval: Approval | None = None
    # Resource figures, sampled while running; not persisted.
    cpu_percent: float | None = None
    rss_bytes: int | None = None

    @property
    def exit_signal(self) -> str | None:
        return signal_name(self.exit_code)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _RUN_FIELDS}
        data["exit_signal"] = self.exit_signal
        for key in ("state", "permission", "activity", "error_kind"):
            data[key] = None if data[key] is None else str(data[key])
        for key in ("created_at", "started_at", "ended_at"):
            data[key] = iso(data[key])
        data["tokens"] = self.tokens.to_json() if self.tokens else None
        data["denials"] = [denial.to_json() for denial in self.denials]
        data["worktree"] = self.worktree.to_json() if self.worktree else None
        data["changes"] = self.changes.to_json() if self.changes else None
        data["pending_approval"] = (
            self.pending_approval.to_json() if self.pending_approval else None
        )
        del data["pid_started_at"]
        return data


# Asked once: ``dataclasses.fields`` builds its answer at every call, and a run is turned into
# JSON for every event about it.
_RUN_FIELDS = tuple(f.name for f in fields(Run))
