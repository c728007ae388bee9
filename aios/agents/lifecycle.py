"""The run lifecycle as a pure state machine: it decides what happens next, and does nothing else.

No I/O, no asyncio, no processes. :class:`Lifecycle` is fed events (:mod:`aios.agents.effects`
names them) - a run was launched, its process was spawned or could not be, its output said
something, the user answered a request, its leader exited, the user asked it to stop, a timer
fired, a resource sample came in, an ended run's worktree was merged - and answers each with a
list of *effects* for the shell (``aios.agents.supervisor``) to carry out, in order. Time comes
from an injected :class:`Clock`, so every rule of timing (admission, start seconds, backoff,
stalls, approval timeouts) is unit-tested in microseconds with a fake one.

The core is the only writer of run records. A :class:`~aios.runs.Run` is immutable; the core
holds the current snapshot of each live run (the one registry of live runs), replaces it in
``_change`` - which checks the transition table of :mod:`aios.runs` first when the state moves -
and hands every new snapshot to the shell in a ``Changed`` effect (an ended run's in an
``Amended`` one). What the core adds is bookkeeping that the record does not already say: the
queue, who holds a slot, when a process was spawned, how many starts in a row failed, which
timers are current, and what the output has said (:mod:`aios.agents.learning`).

Admission is synchronous: a run takes its slot the moment it leaves the queue (it holds it until
it ends, through ``backoff`` too), and the queue cap is checked and the run appended in the same
call, so no number of simultaneous launches can overfill either.

Start seconds (supervisord's ``startsecs``): a process counts as started once it has stayed up
``start_seconds``; only then is the run ``running``. A non-zero exit before that is a *failed
start*. Consecutive failed starts double the backoff (1, 2, 4 … ``backoff_cap`` seconds), so a
command that crashes the moment it starts backs off at once; a run that had started and then fails
waits the base delay again. Either way it restarts at most ``max_restarts`` times.

Stalls: a run whose process has printed nothing for ``stall_after`` seconds is ``stalled`` (one
timer per run, set again for the next deadline when it fires: output itself sets no timer).
Approval timeouts: a request of a two-way session left unanswered ``approval_timeout`` seconds
is denied. A terminal run quiet for ``input_quiet`` s is probed: ``awaiting_input`` if reading.

Attention for entering ``runs.ATTENTION_ACTIVITIES`` is sent only once the activity has held for
``settle`` seconds (a timer), and dropped if the run moved on or ended meanwhile: an agent that
gives up passes through such activities in its last moment (aider says it waits for a login as it
quits), and that is no call for the user. A request for approval calls at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from aios.agents import learning
from aios.agents.effects import (
    Amended,
    Answer,
    Changed,
    Clock,
    Effect,
    Observation,
    Outcome,
    Policy,
    Probe,
    Released,
    Sampled,
    Schedule,
    Spawn,
    SystemClock,
    Terminate,
)
from aios.agents.errors import InvalidLaunch, QueueFull, ShuttingDown, WrongRunState
from aios.agents.learning import Hearing
from aios.runs import Activity, Changes, Run, RunState, check_transition

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "MAX_QUEUED", "Lifecycle"]

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
MAX_QUEUED = 100
SETTLE = 1.0  # seconds an activity that calls for the user must hold before it does

_S = RunState
_NO_ERROR: dict[str, Any] = {"error": None, "error_kind": None, "hint": None}


class _Timer(Enum):
    STARTED = "started"  # start_seconds have passed: starting → running
    RESTART = "restart"  # the backoff is over: backoff → starting
    STALL = "stall"  # the run may have printed nothing for stall_after seconds
    APPROVAL = "approval"  # a request's approval_timeout has passed
    SETTLE = "settle"  # an activity that calls for the user may have held its settle time
    QUIET = "quiet"  # a terminal run may have been quiet for input_quiet seconds


@dataclass
class _Life:
    run: Run
    policy: Policy
    spawned_at: float | None = None  # monotonic; None until this attempt's process exists
    failed_starts: int = 0  # in a row
    timers: dict[int, tuple[_Timer, str]] = field(default_factory=dict)  # token → kind, request
    hearing: Hearing = field(default_factory=Hearing)
    attached: object = None  # the shell's own (its process, its reader), never looked into


class Lifecycle:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_concurrent: int = 4,
        max_queued: int = MAX_QUEUED,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        settle: float = SETTLE,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        # Read at every admission; the shell sets it from config.toml, which may change.
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.settle = settle
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

    def attached(self, run_id: str) -> object:
        """What the shell attached to a live run at launch (None once it ended): the registry
        of live runs is this one, so the shell keeps no second one."""
        life = self._lives.get(run_id)
        return life.attached if life else None

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

    # -- events of a run's life ----------------------------------------------------------------

    def launch(self, run: Run, policy: Policy, attached: object = None) -> list[Effect]:
        """A new run: queue it (raising QueueFull when the queue is full) and admit what fits.
        ``attached``: the shell's own for the run, handed back by ``attached`` and ``Released``."""
        if self.closing:
            raise ShuttingDown
        if run.state is not _S.QUEUED or run.id in self._lives:
            raise ValueError(f"run {run.id} is not a new run")
        free = max(0, self.max_concurrent - len(self._slots))
        if len(self._queue) + 1 - free > self.max_queued:
            raise QueueFull(self.max_queued)
        self._lives[run.id] = _Life(run, policy, attached=attached)
        self._queue.append(run.id)
        return [Changed(run), *self._admit()]

    def spawned(self, run_id: str, *, pid: int, pid_started_at: float | None) -> list[Effect]:
        life = self._life(run_id)
        life.spawned_at = self.clock.monotonic()
        life.hearing = Hearing(heard_at=life.spawned_at)  # a new attempt, a new stream
        effects: list[Effect] = [self._change(life, pid=pid, pid_started_at=pid_started_at)]
        if life.run.state is _S.STOPPING:  # asked to stop while the process was being created
            effects.append(Terminate(run_id))
            return effects
        policy = life.policy
        effects.append(self._schedule(life, policy.start_seconds, _Timer.STARTED))
        for delay, timer in (
            (policy.stall_after, _Timer.STALL),
            (policy.input_quiet, _Timer.QUIET),
        ):
            effects += [self._schedule(life, delay, timer)] if delay > 0 else []
        return effects

    def spawn_failed(self, run_id: str, error: str) -> list[Effect]:
        life = self._life(run_id)
        target = _S.STOPPED if life.run.state is _S.STOPPING else _S.FAILED
        return self._end(life, target, error=error)

    def exited(
        self,
        run_id: str,
        exit_code: int,
        outcome: Outcome | None = None,
        changes: Changes | None = None,
    ) -> list[Effect]:
        """The leader exited with ``exit_code`` (negative: killed by that signal), and what it
        left behind has been dealt with. ``outcome`` is what its output said: a failure there
        wins over an exit code of 0 (CLIs that exit 0 when every model call failed exist).
        ``changes``: what it changed in its git directory (None: nothing new recorded)."""
        life = self._life(run_id)
        run, policy = life.run, life.policy
        outcome = outcome or Outcome()
        up = self.clock.monotonic() - (life.spawned_at or self.clock.monotonic())
        life.spawned_at = None
        life.timers.clear()  # this attempt's timers mean nothing now
        # Requests die with the process; resource figures are of a process that is gone.
        life.hearing.pending.clear()
        gone: dict[str, Any] = {"pending_approval": None, "cpu_percent": None, "rss_bytes": None}
        if life.hearing.hinted is not None and run.hint == life.hearing.hinted:
            gone["hint"] = None  # the wait's hint; what the end says replaces it
        if changes is not None:
            gone["changes"] = changes
        if outcome.lost:
            gone["error"] = outcome.lost
        if run.state is _S.STOPPING:  # the user chose to end it, whatever the exit code says
            gone |= learning.stopped(outcome)  # keeping what the stream had learnt
            return self._end(life, _S.STOPPED, exit_code=exit_code, **gone)
        if exit_code == 0 and outcome.failure is None:
            return self._end(life, _S.SUCCEEDED, exit_code=exit_code, **{**_NO_ERROR, **gone})
        error = outcome.failure or outcome.lost
        gone |= {"error": error, "error_kind": outcome.kind, "hint": outcome.hint}
        failed_start = up < policy.start_seconds
        life.failed_starts = life.failed_starts + 1 if failed_start else 0
        if policy.restart_on_failure and run.restarts < policy.max_restarts:
            steps = max(life.failed_starts - 1, 0)
            delay = min(self.backoff_base * 2**steps, self.backoff_cap)
            return [
                self._change(life, _S.BACKOFF, exit_code=exit_code, **gone),
                self._schedule(life, delay, _Timer.RESTART),
            ]
        if policy.restart_on_failure and failed_start and outcome.failure is None:
            gone["error"] = (
                f"gave up after {run.restarts} restarts: it exited within "
                f"{policy.start_seconds:g} s of starting"
            )
        return self._end(life, _S.FAILED, exit_code=exit_code, **gone)

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
            effects: list[Effect] = [self._change(life, _S.STOPPING)]
            self._cancel(life, _Timer.STARTED)  # a pending start no longer means anything
            if life.spawned_at is not None:  # else spawned() sends it once the process exists
                effects.append(Terminate(run_id))
            return effects
        return []  # stopping already

    def timer_fired(self, run_id: str, token: int) -> list[Effect]:
        life = self._lives.get(run_id)
        if life is None or token not in life.timers:
            return []  # stale: the run moved on since this timer was set
        kind, request = life.timers.pop(token)
        state = life.run.state
        if kind is _Timer.STARTED and state is _S.STARTING:
            life.failed_starts = 0
            return [self._change(life, _S.RUNNING)]
        if kind is _Timer.RESTART and state is _S.BACKOFF:
            return [self._change(life, _S.STARTING, restarts=life.run.restarts + 1), Spawn(run_id)]
        if kind in (_Timer.STALL, _Timer.QUIET):
            return self._silence_check(life, kind)
        return self._waited(life, kind, request)

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
        ended_at = run.ended_at or self.clock.time()
        return Changed(replace(run, state=_S.INTERRUPTED, ended_at=ended_at), run.state)

    def amend(self, run: Run, **changes: Any) -> list[Effect]:
        """An ended run learned something after the fact (what its worktree became, what it
        changed, found after a restart): a new snapshot of it, to be written where it is."""
        if run.id in self._lives:
            return []  # a stale copy: a live run's record is the core's, and it goes on
        return [Amended(replace(run, **changes))]

    # -- events of what a live run's process does ------------------------------------------------

    def heard(self, run_id: str) -> None:
        """The run printed something (called for every read: no effects, just the time)."""
        life = self._lives.get(run_id)
        if life is not None:
            life.hearing.heard_at = self.clock.monotonic()
            life.hearing.stalled = None  # the record says so at the next observation
            life.hearing.awaiting_input = False

    def probed(self, run_id: str, reading: bool) -> list[Effect]:
        """A ``Probe``'s answer: blocked reading its terminal, or not (output since: not)."""
        life = self._lives.get(run_id)
        if life is None or life.spawned_at is None or life.run.state not in learning.WATCHED:
            return []
        quiet = self.clock.monotonic() - life.hearing.heard_at
        if not reading or quiet < life.policy.input_quiet or life.hearing.awaiting_input:
            return []
        life.hearing.awaiting_input, before = True, life.run
        return [change, *self._entered(life, before)] if (change := self._learn(life)) else []

    def observed(self, run_id: str, seen: Observation) -> list[Effect]:
        """What the output said since the last observation: facts, activity and requests."""
        life = self._lives.get(run_id)
        if life is None or not life.run.state.is_live:
            return []
        hearing, effects = life.hearing, list[Effect]()
        hearing.said = None if seen.activity is None else (seen.activity, seen.activity_detail)
        hearing.hint = seen.hint
        new = []
        for approval in seen.asked:
            if approval.id in hearing.pending or approval.id in hearing.answered:
                continue
            token = 0
            if (timeout := life.policy.approval_timeout) > 0:
                schedule = self._schedule(life, timeout, _Timer.APPROVAL, approval.id)
                effects.append(schedule)
                token = schedule.token
            hearing.pending[approval.id] = (approval, token)
            new.append(approval)
        for gone in seen.withdrawn:  # after the asking: both may be in one observation
            _, token = hearing.pending.pop(gone, (None, 0))
            life.timers.pop(token, None)
        new = [approval for approval in new if approval.id in hearing.pending]
        before = life.run
        change = self._learn(life, **learning.facts(before, seen))
        if change is None:
            return effects
        asked = [learning.asked(change.run, approval) for approval in new]
        return [change, *asked, *self._entered(life, before), *effects]

    def decide(
        self,
        run_id: str,
        approval_id: str,
        allow: bool,
        message: str = "",
        *,
        always: bool = False,
    ) -> list[Effect]:
        """The user answered a request (``always``: allow it for the rest of the session, where
        the request offered that). Deciding one again sends nothing; an unknown one is
        refused."""
        life = self._lives.get(run_id)
        if life is None:
            raise WrongRunState(f"run {run_id} has ended: continue it instead")
        if approval_id in life.hearing.answered:
            return []
        if approval_id not in life.hearing.pending:
            raise WrongRunState(f"run {run_id} has no pending approval {approval_id!r}")
        approval, _ = life.hearing.pending[approval_id]
        if always and not approval.always:
            raise InvalidLaunch(f"{approval.tool} can only be allowed once: no 'always' is offered")
        allow = allow or always
        return self._answer(life, approval_id, allow=allow, message=message, always=always)

    def sampled(self, run_id: str, cpu_percent: float, rss_bytes: int) -> list[Effect]:
        """Resource figures of a live run's process (published, not persisted)."""
        life = self._lives.get(run_id)
        if life is None or life.spawned_at is None or life.run.state not in learning.WATCHED:
            return []
        life.run = replace(life.run, cpu_percent=round(cpu_percent, 1), rss_bytes=rss_bytes)
        return [Sampled(life.run)]

    # -- the one place a run record changes ----------------------------------------------------

    def _change(self, life: _Life, target: RunState | None = None, **changes: Any) -> Changed:
        """A new snapshot of the run, in ``target`` state (checked against the table) or in
        the state it is in."""
        run = life.run
        source = run.state
        if target is not None:
            check_transition(run.id, source, target)
            changes["state"] = target
            if target is _S.STARTING:
                changes.setdefault("started_at", run.started_at or self.clock.time())
                changes.setdefault("activity", Activity.STARTING)
                changes.setdefault("activity_detail", None)
            elif target not in (_S.RUNNING, _S.STOPPING):  # backoff and the ends: doing nothing
                changes.setdefault("activity", None)
                changes.setdefault("activity_detail", None)
        life.run = replace(run, **changes)
        return Changed(life.run, source)

    def _learn(self, life: _Life, **changes: Any) -> Changed | None:
        """A live run's facts, and its activity and request as its hearing says: a snapshot
        only when something differs."""
        changes |= learning.derived(replace(life.run, **changes), life.hearing)
        if not changes:
            return None
        change = self._change(life, **changes)
        life.hearing.hinted = learning.live_hint(life.run.activity, life.hearing)
        return change

    def _answer(
        self, life: _Life, request: str, *, allow: bool, message: str, always: bool = False
    ) -> list[Effect]:
        _, token = life.hearing.pending.pop(request)
        life.timers.pop(token, None)
        life.hearing.answered.add(request)
        effects: list[Effect] = [Answer(life.run.id, request, allow, message, always)]
        change = self._learn(life)
        return [change, *effects] if change else effects

    def _waited(self, life: _Life, kind: _Timer, request: str) -> list[Effect]:
        """A timer of the user's side: an activity's settle time, a request's timeout."""
        if kind is _Timer.SETTLE:
            return list(learning.settled(life.run, request))
        if kind is _Timer.APPROVAL and request in life.hearing.pending:
            timeout = life.policy.approval_timeout
            why = f"No answer within {timeout:g} s: denied."
            return self._answer(life, request, allow=False, message=why)
        return []

    def _silence_check(self, life: _Life, kind: _Timer) -> list[Effect]:
        """Silent for stall_after s: stalled; for input_quiet s: probed. Then set again."""
        hearing, policy = life.hearing, life.policy
        limit = policy.stall_after if kind is _Timer.STALL else policy.input_quiet
        if life.spawned_at is None:
            return []
        quiet = self.clock.monotonic() - hearing.heard_at
        effects: list[Effect] = []
        if kind is _Timer.QUIET:
            if quiet >= limit and not hearing.awaiting_input and life.run.state in learning.WATCHED:
                effects.append(Probe(life.run.id))
        elif learning.stalled(life.run, hearing, quiet, limit):
            hearing.stalled = learning.quiet_for(quiet)
            before = life.run
            if (change := self._learn(life)) is not None:
                effects += [change, *self._entered(life, before)]
        wait = limit if quiet >= limit else limit - quiet
        return [*effects, self._schedule(life, wait, kind)]

    def _entered(self, life: _Life, before: Run) -> list[Effect]:
        """The settle timer for an activity that calls for the user, when the run enters one."""
        activity = learning.entered(before, life.run)
        if activity is None:
            return []
        return [self._schedule(life, self.settle, _Timer.SETTLE, str(activity))]

    def _end(self, life: _Life, target: RunState, **changes: Any) -> list[Effect]:
        run_id = life.run.id
        change = self._change(life, target, ended_at=self.clock.time(), **changes)
        del self._lives[run_id]
        self._slots.discard(run_id)
        released = Released(change.run, life.attached)
        return [change, *learning.at_end(change.run), released, *self._admit()]

    def _admit(self) -> list[Effect]:
        effects: list[Effect] = []
        while self._queue and len(self._slots) < self.max_concurrent and not self.closing:
            run_id = self._queue.popleft()
            self._slots.add(run_id)  # taken now, not once a task gets round to it
            effects += [self._change(self._lives[run_id], _S.STARTING), Spawn(run_id)]
        return effects

    def _schedule(self, life: _Life, delay: float, kind: _Timer, request: str = "") -> Schedule:
        if kind is not _Timer.APPROVAL:
            # One timer of each kind at most (approvals have one each): a run that enters
            # another activity that calls for the user settles that one instead.
            self._cancel(life, kind)
        self._tokens += 1
        life.timers[self._tokens] = (kind, request)
        return Schedule(life.run.id, delay, self._tokens)

    def _cancel(self, life: _Life, kind: _Timer) -> None:
        for token, (timer, _) in list(life.timers.items()):
            if timer is kind:
                del life.timers[token]

    def _life(self, run_id: str) -> _Life:
        life = self._lives.get(run_id)
        if life is None:
            raise KeyError(f"run {run_id} is not live")
        return life
