"""The lifecycle core on its own: fed events with a fake clock, no processes, no loop."""

from __future__ import annotations

import random

import pytest

from aios.agents.effects import Outcome, Policy
from aios.agents.errors import QueueFull, ShuttingDown, WrongRunState
from aios.agents.lifecycle import Lifecycle
from aios.runs import (
    TRANSITIONS,
    Activity,
    FailureKind,
    IllegalTransition,
    Run,
    RunState,
    check_transition,
)
from tests.coreshell import FakeClock, Shell

S = RunState


def state(run: Run) -> RunState:
    """The run's state now (a call, so mypy does not narrow it across events)."""
    return run.state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shell(clock: FakeClock) -> Shell:
    return Shell(Lifecycle(clock=clock, max_concurrent=2, max_queued=3), clock)


# -- a run's life ------------------------------------------------------------------------------


def test_running_only_after_start_seconds(shell: Shell) -> None:
    run = shell.launch(Policy(start_seconds=1.5))
    assert shell.spawns == [run.id] and state(run) is S.STARTING
    shell.spawned(run)
    assert run.pid == 4242 and state(run) is S.STARTING
    shell.advance(1.4)
    assert state(run) is S.STARTING
    shell.advance(0.1)
    assert state(run) is S.RUNNING
    shell.advance(30)
    shell.exited(run, 0)
    assert shell.states(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED]
    assert run.exit_code == 0 and run.ended_at is not None
    assert shell.released == [run.id] and run.id not in shell.core


def test_a_quick_success_is_a_success(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.advance(0.01)
    shell.exited(run, 0)
    assert shell.states(run) == [S.QUEUED, S.STARTING, S.SUCCEEDED]


def test_a_quick_failure_without_restart_is_a_failure(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.exited(run, 2)
    assert shell.states(run) == [S.QUEUED, S.STARTING, S.FAILED]
    assert run.exit_code == 2 and run.error is None


def test_crash_loop_backs_off_1_2_4_capped(clock: FakeClock) -> None:
    shell = Shell(Lifecycle(clock=clock, backoff_base=1, backoff_cap=8), clock)
    run = shell.launch(Policy(restart_on_failure=True, max_restarts=7, start_seconds=1))
    delays = []
    for _ in range(7):
        shell.spawned(run)
        shell.advance(0.2)  # dies within start_seconds: a failed start
        shell.exited(run, 1)
        assert state(run) is S.BACKOFF
        due = shell.due(run)
        delays.append(round(due - clock.now, 6))
        shell.advance(due - clock.now)
        assert state(run) is S.STARTING
    assert delays == [1, 2, 4, 8, 8, 8, 8]
    assert run.restarts == 7
    shell.spawned(run)
    shell.exited(run, 1)
    assert state(run) is S.FAILED and run.restarts == 7
    assert run.error == "gave up after 7 restarts: it exited within 1 s of starting"
    assert shell.spawns == [run.id] * 8


def test_backoff_starts_again_from_the_base_after_a_good_start(shell: Shell) -> None:
    run = shell.launch(Policy(restart_on_failure=True, max_restarts=10, start_seconds=1))
    for _ in range(3):  # three failed starts: 1, 2, 4
        shell.spawned(run)
        shell.exited(run, 1)
        shell.advance(shell.due(run) - shell.clock.now)
    shell.spawned(run)
    shell.advance(5)  # up for start_seconds: a good start
    assert state(run) is S.RUNNING
    shell.exited(run, 1)
    assert shell.due(run) - shell.clock.now == 1.0
    assert state(run) is S.BACKOFF and run.exit_code == 1


def test_restart_stops_after_max_restarts_for_long_runs_too(shell: Shell) -> None:
    run = shell.launch(Policy(restart_on_failure=True, max_restarts=1))
    shell.spawned(run)
    shell.advance(10)
    shell.exited(run, 3)
    shell.advance(1)
    shell.spawned(run)
    shell.advance(10)
    shell.exited(run, 3)
    assert state(run) is S.FAILED and run.restarts == 1 and run.error is None


def test_the_start_timer_of_an_earlier_attempt_is_stale(shell: Shell) -> None:
    run = shell.launch(Policy(restart_on_failure=True, start_seconds=1))
    shell.spawned(run)
    token = shell.token(run)
    shell.exited(run, 1)  # within start seconds
    assert shell.core.timer_fired(run.id, token) == []
    assert state(run) is S.BACKOFF


# -- stopping --------------------------------------------------------------------------------


def test_stop_while_running_terminates_and_ends_stopped_whatever_the_code(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.advance(2)
    shell.do(shell.core.stop(run.id))
    assert state(run) is S.STOPPING and shell.terminated == [run.id]
    assert shell.core.stop(run.id) == []  # asking again changes nothing
    shell.exited(run, -15)
    assert state(run) is S.STOPPED and run.exit_code == -15


def test_stop_before_the_process_exists_terminates_once_it_does(shell: Shell) -> None:
    run = shell.launch()
    shell.do(shell.core.stop(run.id))
    assert state(run) is S.STOPPING and shell.terminated == []
    shell.spawned(run)
    assert shell.terminated == [run.id] and state(run) is S.STOPPING
    shell.advance(5)  # no start timer was set: it stays stopping
    assert state(run) is S.STOPPING
    shell.exited(run, 0)
    assert state(run) is S.STOPPED


def test_stop_during_start_seconds_cancels_the_start_timer(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    token = shell.token(run)
    shell.do(shell.core.stop(run.id))
    assert shell.core.timer_fired(run.id, token) == []
    assert state(run) is S.STOPPING


def test_stop_in_backoff_and_in_the_queue_ends_at_once(shell: Shell) -> None:
    first = shell.launch(Policy(restart_on_failure=True))
    shell.spawned(first)
    shell.exited(first, 1)
    token = shell.token(first)
    shell.do(shell.core.stop(first.id))
    assert state(first) is S.STOPPED and shell.core.timer_fired(first.id, token) == []
    blockers = [shell.launch(), shell.launch()]
    queued = shell.launch()
    assert state(queued) is S.QUEUED
    shell.do(shell.core.stop(queued.id))
    assert shell.states(queued) == [S.QUEUED, S.STOPPED]
    assert queued.id not in shell.spawns and all(state(b) is S.STARTING for b in blockers)


def test_stopping_an_unknown_run_is_refused(shell: Shell) -> None:
    with pytest.raises(WrongRunState):
        shell.core.stop("nope")


def test_spawn_failure_fails_or_stops(shell: Shell) -> None:
    run = shell.launch()
    shell.do(shell.core.spawn_failed(run.id, "cannot start 'x': no such file"))
    assert state(run) is S.FAILED and run.error == "cannot start 'x': no such file"
    other = shell.launch()
    shell.do(shell.core.stop(other.id))
    shell.do(shell.core.spawn_failed(other.id, "gone"))
    assert state(other) is S.STOPPED


def test_a_crash_of_the_shell_ends_the_run_legally(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.do(shell.core.stop(run.id))
    shell.do(shell.core.crashed(run.id, "internal error: boom"))
    assert state(run) is S.STOPPED and run.error == "internal error: boom"
    assert shell.core.crashed(run.id, "again") == []


def test_close_stops_everything_and_admits_nothing(shell: Shell) -> None:
    running = [shell.launch(), shell.launch()]
    for run in running:
        shell.spawned(run)
    queued = shell.launch()
    shell.do(shell.core.close())
    assert state(queued) is S.STOPPED and queued.id not in shell.spawns
    assert all(state(run) is S.STOPPING for run in running)
    assert sorted(shell.terminated) == sorted(run.id for run in running)
    with pytest.raises(ShuttingDown):
        shell.launch()
    for run in running:
        shell.exited(run, -15)
    assert shell.core.active == 0 and shell.core.live_ids == []


def test_a_leftover_of_another_daemon_is_interrupted(clock: FakeClock) -> None:
    core = Lifecycle(clock=clock)
    left = Run(id="x", agent="a", prompt="", cwd="/", state=S.RUNNING)
    change = core.interrupt(left)
    assert state(change.run) is S.INTERRUPTED and change.source is S.RUNNING
    assert change.run.ended_at == clock.time()
    assert left.state is S.RUNNING  # the record it was given is not changed: a new one is made
    with pytest.raises(IllegalTransition):
        core.interrupt(change.run)


# -- admission ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 64])
def test_admission_under_1000_launches(clock: FakeClock, limit: int) -> None:
    cap = 100
    shell = Shell(Lifecycle(clock=clock, max_concurrent=limit, max_queued=cap), clock)
    accepted: list[Run] = []
    refused = 0
    rng = random.Random(limit)
    alive: list[Run] = []
    peak = 0
    for _ in range(1000):
        try:
            accepted.append(shell.launch())
        except QueueFull:
            refused += 1
        assert shell.core.queued <= cap and shell.core.active <= limit
        # Runs end now and then, in any order: a slot goes to the oldest queued run.
        alive = [run for run in accepted if shell.latest[run.id].state is S.STARTING]
        peak = max(peak, len(alive))
        if alive and rng.random() < 0.3:
            ended = rng.choice(alive)
            shell.spawned(ended)
            shell.exited(ended, 0)
    assert peak == limit and shell.core.active == limit
    assert refused > 0 and len(accepted) + refused == 1000
    # Started in the order launched.
    assert shell.spawns == [run.id for run in accepted][: len(shell.spawns)]


def test_the_queue_cap_counts_free_slots(clock: FakeClock) -> None:
    shell = Shell(Lifecycle(clock=clock, max_concurrent=2, max_queued=3), clock)
    runs = [shell.launch() for _ in range(5)]  # 2 admitted, 3 queued
    assert [r.state for r in runs].count(S.QUEUED) == 3
    with pytest.raises(QueueFull):
        shell.launch()
    shell.spawned(runs[0])
    shell.exited(runs[0], 0)  # frees a slot: the oldest queued run takes it
    assert runs[2].state is S.STARTING
    shell.launch()
    with pytest.raises(QueueFull):
        shell.launch()


def test_a_raised_limit_admits_at_the_next_launch(clock: FakeClock) -> None:
    shell = Shell(Lifecycle(clock=clock, max_concurrent=1), clock)
    runs = [shell.launch() for _ in range(3)]
    shell.core.max_concurrent = 3
    runs.append(shell.launch())
    assert [r.state for r in runs] == [S.STARTING, S.STARTING, S.STARTING, S.QUEUED]


def test_backoff_keeps_the_slot(clock: FakeClock) -> None:
    shell = Shell(Lifecycle(clock=clock, max_concurrent=1), clock)
    flaky = shell.launch(Policy(restart_on_failure=True))
    waiting = shell.launch()
    shell.spawned(flaky)
    shell.exited(flaky, 1)
    assert state(flaky) is S.BACKOFF and state(waiting) is S.QUEUED
    shell.advance(1)
    assert state(flaky) is S.STARTING and state(waiting) is S.QUEUED


# -- the transition table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in RunState for t in RunState if t not in TRANSITIONS[c]],
)
def test_every_illegal_transition_is_refused_naming_both_states(
    current: RunState, target: RunState
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition("r1", current, target)
    assert f"{current} → {target}" in str(caught.value)


def test_events_the_state_does_not_allow_are_refused(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.exited(run, 0)
    with pytest.raises(KeyError):  # ended: the core no longer knows it
        shell.core.exited(run.id, 0)
    queued_core = Lifecycle(clock=shell.clock, max_concurrent=0)
    waiting = Run(id="w", agent="a", prompt="", cwd="/")
    queued_core.launch(waiting, Policy())
    with pytest.raises(IllegalTransition, match="queued → succeeded"):
        queued_core.exited(waiting.id, 0)


# -- outcomes: the stream wins over the exit code -----------------------------------------------


def test_a_failure_behind_exit_0_ends_failed_with_its_reason_and_hint(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.advance(5)
    outcome = Outcome("litellm.AuthenticationError: bad key", FailureKind.AUTH, "Set a key.")
    shell.do(shell.core.exited(run.id, 0, outcome))
    assert state(run) is S.FAILED and run.exit_code == 0
    assert (run.error, run.error_kind, run.hint) == (
        "litellm.AuthenticationError: bad key",
        FailureKind.AUTH,
        "Set a key.",
    )


def test_a_stopped_run_is_stopped_whatever_its_stream_says(shell: Shell) -> None:
    run = shell.launch()
    shell.spawned(run)
    shell.do(shell.core.stop(run.id))
    shell.do(shell.core.exited(run.id, 1, Outcome("boom", FailureKind.API)))
    assert state(run) is S.STOPPED  # and keeps what the stream said (see test_run_hearing)
    assert (run.error, run.error_kind) == ("boom", FailureKind.API)


def test_a_restart_that_succeeds_clears_the_earlier_failure(shell: Shell) -> None:
    run = shell.launch(Policy(restart_on_failure=True))
    shell.spawned(run)
    shell.do(shell.core.exited(run.id, 1, Outcome("offline", FailureKind.OFFLINE, "Check it.")))
    assert state(run) is S.BACKOFF and run.error == "offline" and run.activity is None
    shell.advance(1)
    assert run.activity is Activity.STARTING
    shell.spawned(run)
    shell.exited(run, 0)
    assert state(run) is S.SUCCEEDED and (run.error, run.error_kind, run.hint) == (None,) * 3
    assert run.activity is None


# -- output lost on a full disk ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "stop", "failure", "ending"),
    [
        (0, False, None, (S.SUCCEEDED, "lost")),  # a success stays one, and says what was lost
        (0, True, None, (S.STOPPED, "lost")),
        (3, False, None, (S.FAILED, "lost")),
        (3, False, "the model said no", (S.FAILED, "the model said no")),  # its words first
    ],
)
def test_output_lost_is_the_runs_error_however_it_ends(
    shell: Shell, code: int, stop: bool, failure: str | None, ending: tuple[RunState, str]
) -> None:
    run = shell.launch()
    shell.spawned(run)
    if stop:
        shell.do(shell.core.stop(run.id))
    shell.do(shell.core.exited(run.id, code, Outcome(failure=failure, lost="lost")))
    assert (state(run), run.error) == ending
