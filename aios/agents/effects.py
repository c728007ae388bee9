"""The words the lifecycle core and its shell speak: what the shell tells the core, and what the
core answers.

The shell (``aios.agents.supervisor``) observes - a process spawned or exited, output read, a
request answered, a timer fired, a resource sample - and reports it to the core
(``aios.agents.lifecycle``). The core answers with *effects*, carried out in order: every
change to a run record is a new snapshot in a :class:`Changed` (or :class:`Amended`) effect, and
nothing else ever writes one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from aios.runs import Activity, Approval, Denial, FailureKind, Run, RunState, Tokens

__all__ = [
    "Amended",
    "Answer",
    "Attention",
    "Changed",
    "Clock",
    "Effect",
    "Observation",
    "Outcome",
    "Policy",
    "Released",
    "Sampled",
    "Schedule",
    "Spawn",
    "SystemClock",
    "Terminate",
]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for durations."""

    def time(self) -> float:
        """Seconds since the epoch: for the timestamps a run records."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


@dataclass(frozen=True)
class Policy:
    """What the core needs to know of a run's agent: its rules of timing."""

    restart_on_failure: bool = False
    max_restarts: int = 5
    start_seconds: float = 1.0
    stall_after: float = 0.0  # seconds of silence that make a run stalled (0: never)
    approval_timeout: float = 0.0  # seconds after which a request is denied (0: never)
    # A terminal run quiet this long is looked at: does its program wait for input? (0: never)
    input_quiet: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What an agent's output said about how its attempt ended."""

    failure: str | None = None  # the stream says it failed, and why
    kind: FailureKind | None = None
    hint: str | None = None  # what the user can do about it
    # What AIOS could not keep of the output (a full disk): recorded as the run's error however
    # it ended, without making a success a failure (the agent did its work).
    lost: str | None = None
    activity: Activity | None = None  # what the stream last said the run was doing


@dataclass(frozen=True)
class Observation:
    """What a run's output has said since the last observation (a format's ``Knowledge``, as
    values). Facts that are None (or empty) say nothing: the run keeps what it had."""

    activity: Activity | None = None  # None: the stream has no opinion (it is working)
    activity_detail: str | None = None
    hint: str | None = None  # what to do about the activity (offline, needs_login)
    session_id: str | None = None
    model: str | None = None
    tokens: Tokens | None = None
    cost_usd: float | None = None
    num_turns: int | None = None
    denials: tuple[Denial, ...] = ()
    # Two-way sessions: requests the agent made, and ones it withdrew, since the last one.
    asked: tuple[Approval, ...] = ()
    withdrawn: tuple[str, ...] = ()


# -- effects: what the shell must do, in the order given ------------------------------------------


@dataclass(frozen=True)
class Changed:
    """Persist ``run`` (a snapshot), then publish it. ``source`` is the state it left (the same
    state when only its details changed), or None for a new record."""

    run: Run
    source: RunState | None = None


@dataclass(frozen=True)
class Amended:
    """Persist a change to a run that has ended (never bringing back a deleted one), then
    publish it: what happened to its worktree, its changes found after a restart."""

    run: Run


@dataclass(frozen=True)
class Sampled:
    """Publish a live run's resource figures (a ``stats`` event; they are not persisted)."""

    run: Run


@dataclass(frozen=True)
class Attention:
    """Something the user should look at: published as an ``attention`` event, after the run
    that calls for it."""

    run: Run
    # needs_login | stalled | offline | awaiting_input | awaiting_approval | denials
    # | hidden_failure
    reason: str
    message: str
    approval: Approval | None = None  # for awaiting_approval: what the agent asks to do

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run": self.run.id,
            "agent": self.run.agent,
            "reason": self.reason,
            "message": self.message,
        }
        if self.approval is not None:
            data["approval"] = self.approval.to_json()
        return data


@dataclass(frozen=True)
class Answer:
    """Write the answer to a request of a two-way session to its agent."""

    run_id: str
    approval_id: str
    allow: bool
    message: str = ""
    always: bool = False  # allowed for the rest of the session


@dataclass(frozen=True)
class Spawn:
    run_id: str


@dataclass(frozen=True)
class Terminate:
    """Begin the stop escalation: SIGTERM to the group, SIGKILL after the agent's stop_timeout."""

    run_id: str


@dataclass(frozen=True)
class Schedule:
    """Call ``timer_fired(run_id, token)`` after ``delay`` seconds. A run may have several
    timers; one the core no longer wants is ignored when it fires (its token is stale)."""

    run_id: str
    delay: float
    token: int


@dataclass(frozen=True)
class Probe:
    """Look whether the run's program is blocked reading its terminal, and tell the core
    (``probed``): the core cannot read ``/proc``."""

    run_id: str


@dataclass(frozen=True)
class Released:
    """The run ended (``run``, as it ended): its slot is free and the core has forgotten it.
    ``attached``: what the shell attached to it at launch, for the shell to let go of."""

    run: Run
    attached: object = None

    @property
    def run_id(self) -> str:
        return self.run.id


Effect = (
    Changed
    | Amended
    | Sampled
    | Attention
    | Answer
    | Spawn
    | Terminate
    | Schedule
    | Probe
    | Released
)
