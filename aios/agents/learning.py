"""What a live run's output teaches its record: the part of the lifecycle core that turns
observations into changes and calls for attention. Pure: values in, values out.

The core keeps, per live run, a :class:`Hearing`: the stream's own last word on what the run is
doing, the requests waiting for the user (the one place pending approvals are held), and whether
the run has gone quiet. The run's ``activity`` is derived from it, in this order: a pending
request (``awaiting_approval``), then silence (``stalled``), then what the stream says (anything
heard at all means ``working``); ``awaiting_input`` (a quiet terminal run whose program is
blocked reading its terminal) comes before ``stalled``: silence is what it waits in. While the
run waits offline or for a login, its record's ``hint`` says what to do about it (the format's
words), and is cleared when the wait is over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aios.agents.effects import Attention, Observation, Outcome
from aios.formatting import duration
from aios.runs import ATTENTION_ACTIVITIES, Activity, Approval, FailureKind, Run, RunState

# What the stream learns that is copied onto the run as it is (activity is derived apart).
FACTS = ("session_id", "model", "tokens", "cost_usd", "num_turns", "denials")

# A run is quiet while it waits for the user (a two-way session's answer, a login): not a stall.
QUIET_BY_DESIGN = frozenset(
    {
        Activity.STALLED,
        Activity.WAITING,
        Activity.AWAITING_APPROVAL,
        Activity.NEEDS_LOGIN,
        Activity.AWAITING_INPUT,
    }
)
# States in which silence can be a stall: a process is there and is meant to be working.
WATCHED = frozenset({RunState.STARTING, RunState.RUNNING})
# Activities whose record carries a hint while they last: the user can act on them.
HINTED = frozenset({Activity.OFFLINE, Activity.NEEDS_LOGIN})
# A run that ends while it waits for one of these failed (or was stopped) for that reason.
KIND_OF_WAIT = {Activity.OFFLINE: FailureKind.OFFLINE, Activity.NEEDS_LOGIN: FailureKind.AUTH}
# What a run the user stopped was doing, in words ("stopped while offline").
STOPPED_WHILE = {
    Activity.OFFLINE: "offline",
    Activity.NEEDS_LOGIN: "waiting for a login",
    Activity.RETRYING: "retrying the API",
}


@dataclass
class Hearing:
    """What the core knows of one attempt's output."""

    heard_at: float = 0.0  # monotonic: the last output, on any stream
    said: tuple[Activity, str | None] | None = None  # the stream's last word; None: nothing yet
    hint: str | None = None  # what the stream's last word says to do (offline, needs_login)
    hinted: str | None = None  # the hint the core put on the record for it, to clear it after
    stalled: str | None = None  # why the run counts as stalled ("no output for 2m 00s")
    # A terminal run's program was found blocked reading its terminal, and nothing was heard
    # since (aios.agents.input_wait looks; heard() clears it).
    awaiting_input: bool = False
    # Requests waiting for the user's answer, oldest first, with their timer's token (or 0).
    pending: dict[str, tuple[Approval, int]] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)  # deciding one again sends nothing

    def first(self) -> Approval | None:
        return next(iter(self.pending.values()))[0] if self.pending else None


def activity(hearing: Hearing) -> tuple[Activity, str | None]:
    if (first := hearing.first()) is not None:
        detail = f"{first.tool}: {first.summary}" if first.summary else first.tool
        return Activity.AWAITING_APPROVAL, detail
    if hearing.awaiting_input:
        return Activity.AWAITING_INPUT, None
    if hearing.stalled is not None:
        return Activity.STALLED, hearing.stalled
    return hearing.said or (Activity.WORKING, None)


def facts(run: Run, seen: Observation) -> dict[str, Any]:
    """The facts ``seen`` says that the run does not have yet."""
    changes: dict[str, Any] = {}
    for name in FACTS:
        value = getattr(seen, name)
        if value not in (None, ()) and value != getattr(run, name):
            changes[name] = value
    return changes


def derived(run: Run, hearing: Hearing) -> dict[str, Any]:
    """The run's activity and pending request as the hearing says, where they differ."""
    now_doing, detail = activity(hearing)
    changes: dict[str, Any] = {}
    if (run.activity, run.activity_detail) != (now_doing, detail):
        changes["activity"], changes["activity_detail"] = now_doing, detail
    if run.pending_approval != hearing.first():
        changes["pending_approval"] = hearing.first()
    hint = live_hint(now_doing, hearing)
    if hint is not None and run.hint != hint:
        changes["hint"] = hint
    elif hint is None and hearing.hinted is not None and run.hint == hearing.hinted:
        changes["hint"] = None  # the wait is over; a hint of another origin stays
    return changes


def live_hint(doing: Activity | None, hearing: Hearing) -> str | None:
    return hearing.hint if doing in HINTED else None


def stalled(run: Run, hearing: Hearing, quiet: float, limit: float) -> bool:
    """Whether a run that has printed nothing for ``quiet`` seconds is stalled now."""
    return (
        run.state in WATCHED
        and 0 < limit <= quiet
        and run.activity not in QUIET_BY_DESIGN
        and hearing.stalled is None
    )


def quiet_for(quiet: float) -> str:
    return f"no output for {duration(quiet)}"


def entered(before: Run, after: Run) -> Activity | None:
    """The activity that needs the user which ``after`` enters, if it does."""
    if after.activity is before.activity or after.activity not in ATTENTION_ACTIVITIES:
        return None
    return after.activity


def settled(run: Run, entered: str) -> list[Attention]:
    """The call for the user's attention once the activity ``entered`` has held its settle time:
    none if the run moved on meanwhile (a run that ends passes through its last activities in
    a moment: aider says it waits for a login as it gives up) or is being stopped."""
    if run.state not in WATCHED or run.activity is None or run.activity != entered:
        return []
    name, detail = run.agent, run.activity_detail
    words = {
        Activity.NEEDS_LOGIN: f"{name} is waiting for a login",
        Activity.STALLED: f"{name} has printed nothing for a while",
        Activity.OFFLINE: f"{name} is offline, waiting for the network",
        Activity.AWAITING_INPUT: f"{name} is waiting for your input in its terminal",
    }[run.activity]
    message = f"{words}: {detail}" if detail else words
    if run.hint and run.activity in HINTED:
        message = f"{message} — {run.hint}"
    return [Attention(run, str(run.activity), message)]


def asked(run: Run, approval: Approval) -> Attention:
    words = f"{run.agent} wants to run {approval.tool}"
    message = f"{words}: {approval.summary}" if approval.summary else words
    return Attention(run, "awaiting_approval", message, approval)


def at_end(run: Run) -> list[Attention]:
    """A run that ended in a way its exit code does not show calls for the user."""
    if run.state is RunState.SUCCEEDED and run.denials:
        refused = ", ".join(f"{d.tool} {d.summary}".strip() for d in run.denials[:3])
        message = f"{run.agent} finished, but was refused {len(run.denials)}: {refused}"
        return [Attention(run, "denials", message)]
    if run.state is RunState.FAILED and run.exit_code == 0 and run.error:
        message = f"{run.agent} failed although it exited 0: {run.error}"
        return [Attention(run, "hidden_failure", message)]
    return []


def stopped(outcome: Outcome) -> dict[str, Any]:
    """What a run the user stopped keeps of what its stream had learnt: the failure it said, or
    the wait it was in (offline, a login), with its hint ("Stopped while offline: …"). Nothing
    when the stream had said nothing of the kind: a stop is not a failure."""
    waiting = STOPPED_WHILE.get(outcome.activity) if outcome.activity is not None else None
    if outcome.failure is None and outcome.kind is None and waiting is None:
        return {}
    error = outcome.failure or (f"stopped while {waiting}" if waiting else outcome.lost)
    hint = outcome.hint
    if hint and waiting:
        hint = f"Stopped while {waiting}: {hint}"
    return {"error": error, "error_kind": outcome.kind, "hint": hint}
