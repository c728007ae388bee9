"""The run lifecycle as a pure state machine: it decides what happens next, and does nothing else.

No I/O, no asyncio, no processes. :class:`Lifecycle` is fed events - a run was launched, its
process was spawned or could not be, its leader exited, the user asked it to stop, a timer fired
- and answers each with a list of *effects* for the shell (``aios.agents.supervisor``) to carry
out, in order: persist and publish a changed run, spawn a process, terminate one, set a timer,
forget a run that ended. Time comes from an injected :class:`Clock`, so every rule (admission,
start seconds, backoff) is unit-tested in microseconds with a fake one.

The run's state lives in one place, ``Run.state``, and changes in one method, ``_move``, which
checks the transition table of :mod:`aios.runs` first. What the core adds is bookkeeping that the
state does not already say: the queue, who holds a slot, when a process was spawned, how many
starts in a row failed, which timer is current.

Admission is synchronous: a run takes its slot the moment it leaves the queue (it holds it until
it ends, through ``backoff`` too), and the queue cap is checked and the run appended in the same
call, so no number of simultaneous launches can overfill either.

Start seconds (supervisord's ``startsecs``): a process counts as started once it has stayed up
``start_seconds``; only then is the run ``running``. A non-zero exit before that is a *failed
start*. Consecutive failed starts double the backoff (1, 2, 4 … ``backoff_cap`` seconds), so a
command that crashes the moment it starts backs off at once; a run that had started and then fails
waits the base delay again. Either way it restarts at most ``max_restarts`` times.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol

from aios.agents.errors import QueueFull, ShuttingDown, WrongRunState
from aios.runs import Activity, FailureKind, Run, RunState, check_transition

__all__ = [
    "Changed",
    "Clock",
    "Effect",
    "Lifecycle",
    "Outcome",
    "Policy",
    "Released",
    "Schedule",
    "Spawn",
    "SystemClock",
    "Terminate",
]

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
MAX_QUEUED = 100

_S = RunState


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
    """What the core needs to know of a run's agent."""

    restart_on_failure: bool = False
    max_restarts: int = 5
    start_seconds: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """What an agent's output said about how its attempt ended."""

    failure: str | None = None  # the stream says it failed, and why
    kind: FailureKind | None = None
    hint: str | None = None  # what the user can do about it
    # What AIOS could not keep of the output (a full disk): recorded as the run's error however
    # it ended, without making a success a failure (the agent did its work).
    lost: str | None = None


_NO_ERROR: dict[str, Any] = {"error": None, "error_kind": None, "hint": None}


# -- effects: what the shell must do, in the order given ------------------------------------------


@dataclass(frozen=True)
class Changed:
    """Persist ``run`` (a snapshot), then publish it. ``source`` is the state it left (the same
    state when only its details changed), or None for a new record."""

    run: Run
    source: RunState | None = None


@dataclass(frozen=True)
class Spawn:
    run_id: str


@dataclass(frozen=True)
class Terminate:
    """Begin the stop escalation: SIGTERM to the group, SIGKILL after the agent's stop_timeout."""

    run_id: str


@dataclass(frozen=True)
class Schedule:
    """Call ``timer_fired(run_id, token)`` after ``delay`` seconds (a run has one timer at most;
    a newer token makes older ones stale)."""

    run_id: str
    delay: float
    token: int


@dataclass(frozen=True)
class Released:
    """The run ended: its slot is free and the core has forgotten it."""

    run_id: str


Effect = Changed | Spawn | Terminate | Schedule | Released


class _Timer(Enum):
    STARTED = "started"  # start_seconds have passed: starting → running
    RESTART = "restart"  # the backoff is over: backoff → starting


@dataclass
class _Life:
    run: Run
    policy: Policy
    spawned_at: float | None = None  # monotonic; None until this attempt's process exists
    failed_starts: int = 0  # in a row
    timer: tuple[int, _Timer] | None = None


class Lifecycle:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_concurrent: int = 4,
        max_queued: int = MAX_QUEUED,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        # Read at every admission; the shell sets it from config.toml, which may change.
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._lives: dict[str, _Life] = {}
        self._queue: deque[str] = deque()
        self._slots: set[str] = set()
        self._tokens = 0
        self.closing = False

    # -- what the shell may ask --------------------------------------------------------------

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._lives

    def run(self, run_id: str) -> Run | None:
        life = self._lives.get(run_id)
        return life.run if life else None

    @property
    def live_ids(self) -> list[str]:
        return list(self._lives)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def active(self) -> int:
        """Runs holding a slot: out of the queue and not ended."""
        return len(self._slots)

    # -- events ------------------------------------------------------------------------------

    def launch(self, run: Run, policy: Policy) -> list[Effect]:
        """A new run: queue it (raising QueueFull when the queue is full) and admit what fits."""
        if self.closing:
            raise ShuttingDown
        if run.state is not _S.QUEUED or run.id in self._lives:
            raise ValueError(f"run {run.id} is not a new run")
        free = max(0, self.max_concurrent - len(self._slots))
        if len(self._queue) + 1 - free > self.max_queued:
            raise QueueFull(self.max_queued)
        self._lives[run.id] = _Life(run, policy)
        self._queue.append(run.id)
        return [Changed(replace(run)), *self._admit()]

    def spawned(self, run_id: str, *, pid: int, pid_started_at: float | None) -> list[Effect]:
        life = self._life(run_id)
        life.spawned_at = self.clock.monotonic()
        effects: list[Effect] = [self._update(life, pid=pid, pid_started_at=pid_started_at)]
        if life.run.state is _S.STOPPING:  # asked to stop while the process was being created
            effects.append(Terminate(run_id))
        else:
            effects.append(self._schedule(life, life.policy.start_seconds, _Timer.STARTED))
        return effects

    def spawn_failed(self, run_id: str, error: str) -> list[Effect]:
        life = self._life(run_id)
        target = _S.STOPPED if life.run.state is _S.STOPPING else _S.FAILED
        return self._end(life, target, error=error)

    def exited(self, run_id: str, exit_code: int, outcome: Outcome | None = None) -> list[Effect]:
        """The leader exited with ``exit_code`` (negative: killed by that signal), and what it
        left behind has been dealt with. ``outcome`` is what its output said: a failure there
        wins over an exit code of 0 (CLIs that exit 0 when every model call failed exist)."""
        life = self._life(run_id)
        run, policy = life.run, life.policy
        outcome = outcome or Outcome()
        up = self.clock.monotonic() - (life.spawned_at or self.clock.monotonic())
        life.spawned_at = None
        lost: dict[str, Any] = {"error": outcome.lost} if outcome.lost else {}
        if run.state is _S.STOPPING:  # the user chose to end it, whatever the exit code says
            return self._end(life, _S.STOPPED, exit_code=exit_code, **lost)
        if exit_code == 0 and outcome.failure is None:
            return self._end(life, _S.SUCCEEDED, exit_code=exit_code, **{**_NO_ERROR, **lost})
        error = outcome.failure or outcome.lost
        why = {"error": error, "error_kind": outcome.kind, "hint": outcome.hint}
        failed_start = up < policy.start_seconds
        life.failed_starts = life.failed_starts + 1 if failed_start else 0
        if policy.restart_on_failure and run.restarts < policy.max_restarts:
            steps = max(life.failed_starts - 1, 0)
            delay = min(self.backoff_base * 2**steps, self.backoff_cap)
            return [
                self._move(life, _S.BACKOFF, exit_code=exit_code, **why),
                self._schedule(life, delay, _Timer.RESTART),
            ]
        if policy.restart_on_failure and failed_start and outcome.failure is None:
            why["error"] = (
                f"gave up after {run.restarts} restarts: it exited within "
                f"{policy.start_seconds:g} s of starting"
            )
        return self._end(life, _S.FAILED, exit_code=exit_code, **why)

    def stop(self, run_id: str) -> list[Effect]:
        """The user asked the run to stop. Asking again while it stops changes nothing."""
        life = self._lives.get(run_id)
        if life is None:
            raise WrongRunState(f"run {run_id} is not live")
        state = life.run.state
        if state is _S.QUEUED:
            self._queue.remove(run_id)
            return self._end(life, _S.STOPPED)
        if state is _S.BACKOFF:
            return self._end(life, _S.STOPPED)
        if state in (_S.STARTING, _S.RUNNING):
            effects: list[Effect] = [self._move(life, _S.STOPPING)]
            life.timer = None  # a pending start timer no longer means anything
            if life.spawned_at is not None:  # else spawned() sends it once the process exists
                effects.append(Terminate(run_id))
            return effects
        return []  # stopping already

    def timer_fired(self, run_id: str, token: int) -> list[Effect]:
        life = self._lives.get(run_id)
        if life is None or life.timer is None or life.timer[0] != token:
            return []  # stale: the run moved on since this timer was set
        _, kind = life.timer
        life.timer = None
        if kind is _Timer.STARTED and life.run.state is _S.STARTING:
            life.failed_starts = 0
            return [self._move(life, _S.RUNNING)]
        if kind is _Timer.RESTART and life.run.state is _S.BACKOFF:
            return [
                self._move(life, _S.STARTING, restarts=life.run.restarts + 1),
                Spawn(run_id),
            ]
        return []

    def crashed(self, run_id: str, error: str) -> list[Effect]:
        """The shell failed while handling the run: end it with that error."""
        life = self._lives.get(run_id)
        if life is None:
            return []
        if life.run.state is _S.QUEUED:
            self._queue.remove(run_id)
        target = _S.STOPPED if life.run.state is _S.STOPPING else _S.FAILED
        return self._end(life, target, error=error)

    def close(self) -> list[Effect]:
        """Shutting down: admit nothing more, stop every live run."""
        self.closing = True
        effects: list[Effect] = []
        for run_id in list(self._queue):  # before the others: none of them may start now
            effects += self.stop(run_id)
        for run_id in list(self._lives):
            effects += self.stop(run_id)
        return effects

    def interrupt(self, run: Run) -> Changed:
        """A run a previous daemon left live (not one of ours): it ends ``interrupted``."""
        check_transition(run.id, run.state, _S.INTERRUPTED)
        source = run.state
        run.state = _S.INTERRUPTED
        run.ended_at = run.ended_at or self.clock.time()
        return Changed(replace(run), source)

    # -- the one place a run's state changes ---------------------------------------------------

    def _move(self, life: _Life, target: RunState, **changes: Any) -> Changed:
        run = life.run
        check_transition(run.id, run.state, target)
        source = run.state
        run.state = target
        if target is _S.STARTING:
            run.started_at = run.started_at or self.clock.time()
            run.activity, run.activity_detail = Activity.STARTING, None
        elif target not in (_S.RUNNING, _S.STOPPING):  # backoff and the ends: doing nothing
            run.activity, run.activity_detail = None, None
        for name, value in changes.items():
            setattr(run, name, value)
        return Changed(replace(run), source)

    def _update(self, life: _Life, **changes: Any) -> Changed:
        for name, value in changes.items():
            setattr(life.run, name, value)
        return Changed(replace(life.run), life.run.state)

    def _end(self, life: _Life, target: RunState, **changes: Any) -> list[Effect]:
        run_id = life.run.id
        effects: list[Effect] = [self._move(life, target, ended_at=self.clock.time(), **changes)]
        del self._lives[run_id]
        self._slots.discard(run_id)
        effects.append(Released(run_id))
        return effects + self._admit()

    def _admit(self) -> list[Effect]:
        effects: list[Effect] = []
        while self._queue and len(self._slots) < self.max_concurrent and not self.closing:
            run_id = self._queue.popleft()
            self._slots.add(run_id)  # taken now, not once a task gets round to it
            effects += [self._move(self._lives[run_id], _S.STARTING), Spawn(run_id)]
        return effects

    def _schedule(self, life: _Life, delay: float, kind: _Timer) -> Schedule:
        self._tokens += 1
        life.timer = (self._tokens, kind)
        return Schedule(life.run.id, delay, self._tokens)

    def _life(self, run_id: str) -> _Life:
        life = self._lives.get(run_id)
        if life is None:
            raise KeyError(f"run {run_id} is not live")
        return life
