"""What a live run's output teaches the lifecycle core, and its timers of silence and of unanswered
requests: fed events with a fake clock, no processes, no loop, no waiting in real time."""

from __future__ import annotations

import dataclasses

import pytest

from aios.agents.effects import Amended, Observation, Outcome, Policy
from aios.agents.errors import WrongRunState
from aios.agents.lifecycle import SETTLE, Lifecycle
from aios.runs import (
    Activity,
    Approval,
    Changes,
    Denial,
    FailureKind,
    Run,
    RunState,
    Tokens,
    Worktree,
    WorktreeState,
)
from tests.coreshell import FakeClock, Shell

S = RunState
BASH = Approval("req-1", "Bash", "npm test")
EDIT = Approval("req-2", "Edit", "")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shell(clock: FakeClock) -> Shell:
    return Shell(Lifecycle(clock=clock), clock)


def started(shell: Shell, policy: Policy | None = None) -> Run:
    run = shell.launch(policy or Policy())
    shell.spawned(run)
    return run


def observe(shell: Shell, run: Run, seen: Observation | None = None) -> None:
    shell.core.heard(run.id)
    shell.do(shell.core.observed(run.id, seen or Observation()))


def doing(run: Run) -> Activity | None:
    """The run's activity now (a call, so mypy does not narrow it across events)."""
    return run.activity


def reasons(shell: Shell) -> list[str]:
    return [item.reason for item in shell.attention]


# -- facts and activity -------------------------------------------------------------------------


def test_any_output_means_working_and_facts_are_kept_when_the_stream_says_nothing(
    shell: Shell,
) -> None:
    run = started(shell)
    assert doing(run) is Activity.STARTING
    observe(shell, run)
    assert doing(run) is Activity.WORKING
    seen = Observation(session_id="s1", model="m", tokens=Tokens(3, 4), cost_usd=0.5)
    observe(shell, run, seen)
    assert (run.session_id, run.model, run.tokens, run.cost_usd) == ("s1", "m", Tokens(3, 4), 0.5)
    changes = len(shell.changes)
    observe(shell, run, dataclasses.replace(seen, session_id=None))  # None says nothing
    assert run.session_id == "s1" and len(shell.changes) == changes  # nothing new: no record


def test_entering_an_activity_that_needs_the_user_calls_once_it_has_held(shell: Shell) -> None:
    run = started(shell)
    offline = Observation(activity=Activity.OFFLINE, activity_detail="reconnecting 1/5")
    observe(shell, run, offline)
    shell.advance(SETTLE - 0.001)
    assert reasons(shell) == []  # not yet: it may be the run's last moment
    observe(shell, run, dataclasses.replace(offline, activity_detail="reconnecting 2/5"))
    assert run.activity_detail == "reconnecting 2/5"
    shell.advance(0.001)
    assert reasons(shell) == ["offline"]  # held: one call, with the detail as it is now
    assert shell.attention[0].message == "a is offline, waiting for the network: reconnecting 2/5"
    shell.advance(60)
    observe(shell, run, Observation(activity=Activity.NEEDS_LOGIN))
    shell.advance(SETTLE)
    assert reasons(shell) == ["offline", "needs_login"]


@pytest.mark.parametrize("then", ["ends", "is stopped", "moves on", "enters another"])
def test_an_activity_entered_in_a_runs_last_moment_calls_for_nobody(
    shell: Shell, then: str
) -> None:
    """aider says it waits for a login for 0.6 s as it gives up: no false alert."""
    run = started(shell)
    observe(shell, run, Observation(activity=Activity.NEEDS_LOGIN, activity_detail="login"))
    shell.advance(0.6)
    if then == "ends":
        shell.exited(run, 1)
    elif then == "is stopped":
        shell.do(shell.core.stop(run.id))
    elif then == "moves on":
        observe(shell, run, Observation(activity=Activity.WORKING))
    else:
        observe(shell, run, Observation(activity=Activity.OFFLINE))
    shell.advance(SETTLE)
    assert reasons(shell) == (["offline"] if then == "enters another" else [])


def test_a_wait_the_user_can_act_on_carries_its_hint_while_it_lasts(shell: Shell) -> None:
    run = shell.launch(Policy(restart_on_failure=True))
    shell.spawned(run)
    shell.do(shell.core.exited(run.id, 1, Outcome("boom", hint="Try later.")))
    shell.advance(1)  # backoff over: a new attempt, the last one's hint still on the record
    assert run.state is S.STARTING and run.hint == "Try later."
    observe(shell, run)
    assert run.hint == "Try later."  # not the live hint's to clear
    offline = Observation(activity=Activity.OFFLINE, activity_detail="waiting", hint="Check it.")
    observe(shell, run, offline)
    shell.advance(SETTLE)
    assert run.hint == "Check it."
    assert (
        shell.attention[-1].message == "a is offline, waiting for the network: waiting — Check it."
    )
    observe(shell, run, Observation(activity=Activity.RETRYING))
    assert run.hint is None  # the wait is over
    observe(shell, run, Observation(activity=Activity.NEEDS_LOGIN, hint="Set a key."))
    assert run.hint == "Set a key."
    shell.exited(run, 0)
    assert run.state is S.SUCCEEDED and run.hint is None
    other = started(shell)
    observe(shell, other, offline)
    shell.do(shell.core.exited(other.id, 1, Outcome()))  # an end that says nothing more
    assert other.state is S.FAILED and other.hint is None


def test_an_ended_run_calls_for_the_user_when_its_exit_code_hides_something(
    shell: Shell,
) -> None:
    run = started(shell)
    observe(shell, run, Observation(denials=(Denial("Bash", "rm -rf /"),)))
    shell.exited(run, 0)
    assert run.state is S.SUCCEEDED and reasons(shell) == ["denials"]
    other = started(shell)
    shell.do(shell.core.exited(other.id, 0, Outcome("the model said no")))
    assert reasons(shell) == ["denials", "hidden_failure"]
    assert shell.attention[-1].message == "a failed although it exited 0: the model said no"


def test_output_after_the_end_changes_nothing(shell: Shell) -> None:
    run = started(shell)
    shell.exited(run, 0)
    assert shell.core.observed(run.id, Observation(model="late")) == []
    shell.core.heard(run.id)  # harmless
    assert run.model is None


# -- approvals: held by the core alone ---------------------------------------------------------


def test_requests_wait_for_the_user_oldest_first_and_a_decision_is_sent_once(
    shell: Shell,
) -> None:
    run = started(shell)
    observe(shell, run, Observation(activity=Activity.WORKING, asked=(BASH,)))
    assert run.pending_approval == BASH
    assert (run.activity, run.activity_detail) == (Activity.AWAITING_APPROVAL, "Bash: npm test")
    assert shell.attention[-1].approval == BASH
    assert shell.attention[-1].message == "a wants to run Bash: npm test"
    observe(shell, run, Observation(activity=Activity.WORKING, asked=(EDIT,)))
    assert run.pending_approval == BASH  # the oldest is shown
    shell.do(shell.core.decide(run.id, BASH.id, True))
    assert run.pending_approval == EDIT and run.activity_detail == "Edit"
    assert shell.core.decide(run.id, BASH.id, False) == []  # decided already: nothing is sent
    with pytest.raises(WrongRunState, match="no pending approval 'req-9'"):
        shell.core.decide(run.id, "req-9", True)
    shell.do(shell.core.decide(run.id, EDIT.id, False, "not now"))
    assert run.pending_approval is None and run.activity is Activity.WORKING
    assert [(a.approval_id, a.allow, a.message) for a in shell.answers] == [
        ("req-1", True, ""),
        ("req-2", False, "not now"),
    ]


def test_a_withdrawn_request_is_no_longer_pending(shell: Shell) -> None:
    run = started(shell)
    observe(shell, run, Observation(asked=(BASH,)))
    observe(shell, run, Observation(withdrawn=(BASH.id,)))
    assert run.pending_approval is None and run.activity is Activity.WORKING
    with pytest.raises(WrongRunState):
        shell.core.decide(run.id, BASH.id, True)
    observe(shell, run, Observation(asked=(EDIT,), withdrawn=(EDIT.id,)))  # in one window
    assert run.pending_approval is None and shell.attention[-1].approval == BASH


def test_an_unanswered_request_is_denied_when_its_time_passes(shell: Shell) -> None:
    run = started(shell, Policy(approval_timeout=30))
    observe(shell, run, Observation(asked=(BASH,)))
    shell.advance(20)
    observe(shell, run, Observation(asked=(EDIT,)))
    shell.advance(9.999)
    assert shell.answers == []
    shell.advance(0.001)
    assert [(a.approval_id, a.allow) for a in shell.answers] == [("req-1", False)]
    assert shell.answers[0].message == "No answer within 30 s: denied."
    assert run.pending_approval == EDIT
    shell.do(shell.core.decide(run.id, EDIT.id, True))  # answered in time: its timer is stale
    shell.advance(60)
    assert [(a.approval_id, a.allow) for a in shell.answers] == [("req-1", False), ("req-2", True)]


def test_requests_die_with_the_process(shell: Shell) -> None:
    run = started(shell, Policy(approval_timeout=5, restart_on_failure=True))
    observe(shell, run, Observation(asked=(BASH,)))
    shell.exited(run, 1)
    assert run.state is S.BACKOFF and run.pending_approval is None
    shell.advance(10)  # the request's timer went with it
    assert shell.answers == []


# -- stalls --------------------------------------------------------------------------------------


def test_a_run_that_prints_nothing_for_stall_after_is_stalled_once(shell: Shell) -> None:
    run = started(shell, Policy(stall_after=120))
    shell.advance(60)
    observe(shell, run)  # output: the silence starts again
    shell.advance(119.999)
    assert doing(run) is Activity.WORKING
    shell.advance(0.001)
    assert (run.activity, run.activity_detail) == (Activity.STALLED, "no output for 2m 00s")
    shell.advance(SETTLE)
    assert reasons(shell) == ["stalled"]
    shell.advance(600)
    assert reasons(shell) == ["stalled"]  # said once
    observe(shell, run)
    assert doing(run) is Activity.WORKING
    shell.advance(120 + SETTLE)
    assert reasons(shell) == ["stalled", "stalled"]


@pytest.mark.parametrize(
    "quiet", [Activity.WAITING, Activity.AWAITING_APPROVAL, Activity.NEEDS_LOGIN]
)
def test_a_run_waiting_for_the_user_is_not_stalled(shell: Shell, quiet: Activity) -> None:
    """A two-way session waiting for an answer, or an agent waiting for a login (aider's
    browser login): the user is the one to act, the run is not stuck."""
    run = started(shell, Policy(stall_after=1))
    if quiet is not Activity.AWAITING_APPROVAL:
        observe(shell, run, Observation(activity=quiet))
    else:
        observe(shell, run, Observation(asked=(BASH,)))
    shell.advance(3600)
    assert doing(run) is quiet and "stalled" not in reasons(shell)
    assert run.state is S.RUNNING


def test_no_stall_without_a_process_or_a_limit_or_once_stopping(
    shell: Shell, clock: FakeClock
) -> None:
    never = started(shell, Policy(stall_after=0))
    queued_core = Shell(Lifecycle(clock=clock, max_concurrent=0), clock)
    waiting = queued_core.launch(Policy(stall_after=1))
    stopping = started(shell, Policy(stall_after=5))
    shell.do(shell.core.stop(stopping.id))
    shell.advance(3600)
    queued_core.advance(3600)
    assert doing(never) is Activity.STARTING and waiting.activity is None
    assert doing(stopping) is Activity.STARTING and shell.attention == []


# -- a user's stop keeps what the stream learnt ----------------------------------------------

OFFLINE_HINT = "Codex cannot reach the OpenAI API: check the network."
STOPPED_OFFLINE = f"Stopped while offline: {OFFLINE_HINT}"


@pytest.mark.parametrize(
    ("outcome", "kept"),
    [
        (  # codex waiting for the network: no failure said, the wait is the reason
            Outcome(kind=FailureKind.OFFLINE, hint=OFFLINE_HINT, activity=Activity.OFFLINE),
            ("stopped while offline", FailureKind.OFFLINE, STOPPED_OFFLINE),
        ),
        (  # an API error said, then retrying
            Outcome("529 overloaded", FailureKind.API, "Try later.", activity=Activity.RETRYING),
            ("529 overloaded", FailureKind.API, "Stopped while retrying the API: Try later."),
        ),
        (Outcome("refused", FailureKind.AUTH, "Log in."), ("refused", FailureKind.AUTH, "Log in.")),
        (Outcome(hint="Some actions were denied.", activity=Activity.WORKING), (None, None, None)),
    ],
)
def test_a_user_stop_keeps_what_the_stream_learnt(
    shell: Shell, outcome: Outcome, kept: tuple[str | None, FailureKind | None, str | None]
) -> None:
    run = started(shell)
    shell.do(shell.core.stop(run.id))
    shell.do(shell.core.exited(run.id, -15, outcome))
    assert run.state is S.STOPPED
    assert (run.error, run.error_kind, run.hint) == kept


# -- resource samples and amendments ---------------------------------------------------------------


def test_samples_are_published_on_the_live_record_and_cleared_at_the_end(shell: Shell) -> None:
    run = started(shell)
    shell.do(shell.core.sampled(run.id, 12.345, 2048))
    assert (run.cpu_percent, run.rss_bytes) == (12.3, 2048)
    assert shell.core.run(run.id) == shell.latest[run.id]
    shell.exited(run, 0)
    assert (run.cpu_percent, run.rss_bytes) == (None, None)
    assert shell.core.sampled(run.id, 1.0, 1) == []


def test_what_changed_is_in_the_record_that_ends_the_run(shell: Shell) -> None:
    run = started(shell)
    changes = Changes(commits=1)
    shell.do(shell.core.exited(run.id, 0, changes=changes))
    assert run.state is S.SUCCEEDED and run.changes == changes


def test_an_ended_run_is_amended_by_a_new_record_and_a_live_one_is_not(shell: Shell) -> None:
    tree = Worktree("/w", "aios/x", "abc", "main", "/repo")
    run = shell.launch()
    live = shell.core.run(run.id)
    assert live is not None
    assert shell.core.amend(live, changes=Changes()) == []  # the core's record goes on
    ended = Run(id="old", agent="a", prompt="", cwd="/", state=S.SUCCEEDED, worktree=tree)
    merged = dataclasses.replace(tree, state=WorktreeState.MERGED)
    [effect] = shell.core.amend(ended, worktree=merged)
    assert isinstance(effect, Amended) and effect.run.worktree == merged
    assert ended.worktree == tree


def test_a_run_record_is_frozen() -> None:
    run = Run(id="x", agent="a", prompt="", cwd="/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.state = S.RUNNING  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(run, "activity", Activity.WORKING)  # noqa: B010
    # object.__setattr__ still could: tests/test_architecture_writes.py finds any such call.


# -- a terminal run waiting for its user (awaiting_input) ------------------------------------


def test_a_quiet_terminal_run_that_reads_its_terminal_awaits_input(shell: Shell) -> None:
    run = started(shell, Policy(input_quiet=1.5, stall_after=120))
    observe(shell, run)
    shell.reading = True
    shell.advance(1.499)
    assert shell.probes == [] and doing(run) is Activity.WORKING
    shell.advance(0.001)  # quiet long enough: looked at, and found reading
    assert shell.probes == [run.id] and doing(run) is Activity.AWAITING_INPUT
    shell.advance(SETTLE)
    assert reasons(shell) == ["awaiting_input"]
    assert shell.attention[0].message == "a is waiting for your input in its terminal"
    shell.advance(600)  # not looked at again while it waits, never stalled, said once
    assert shell.probes == [run.id] and reasons(shell) == ["awaiting_input"]
    assert doing(run) is Activity.AWAITING_INPUT
    observe(shell, run)  # the user typed, it answered
    assert doing(run) is Activity.WORKING
    shell.advance(1.5 + SETTLE)
    assert reasons(shell) == ["awaiting_input", "awaiting_input"]


def test_a_quiet_terminal_run_that_is_busy_does_not_await_input(shell: Shell) -> None:
    run = started(shell, Policy(input_quiet=1.5))
    shell.advance(10)  # computing in silence: looked at every 1.5 s, never waiting
    assert len(shell.probes) == 6 and doing(run) is Activity.STARTING
    assert shell.attention == []
    # Output between the probe and its answer: the answer is stale.
    shell.core.heard(run.id)
    assert shell.core.probed(run.id, True) == []
    piped = started(shell, Policy())  # no terminal: never looked at
    shell.reading = True
    shell.advance(60)
    assert piped.id not in shell.probes and doing(piped) is Activity.STARTING
