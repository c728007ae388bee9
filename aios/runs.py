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
import time
from dataclasses import asdict, dataclass, field
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


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass
class Run:
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
    # Why a run failed without an exit code (executable missing, spawn error): shown to the user.
    error: str | None = None
    # The process start time of ``pid`` (psutil create_time), so a pid reused by an unrelated
    # process after a crash is never mistaken for our agent.
    pid_started_at: float | None = None
    # Resource figures, sampled while running; not persisted.
    cpu_percent: float | None = None
    rss_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        for key in ("created_at", "started_at", "ended_at"):
            data[key] = iso(data[key])
        del data["pid_started_at"]
        return data
