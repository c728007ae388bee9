"""The run state machine (DESIGN.md section 6) and the JSON shape of a run."""

from __future__ import annotations

import itertools
import re
from collections import deque
from datetime import UTC, datetime

import pytest

from aios.runs import (
    FINAL_STATES,
    MAX_LISTED_FILES,
    TRANSITIONS,
    Changes,
    ChangeStatus,
    FileChange,
    IllegalTransition,
    Run,
    RunState,
    Worktree,
    check_transition,
    new_run_id,
    signal_name,
)

S = RunState
ALL_PAIRS = list(itertools.product(RunState, RunState))
LIVE_STATES = [state for state in RunState if state not in FINAL_STATES]


def reachable(start: RunState) -> set[RunState]:
    seen = {start}
    todo = deque([start])
    while todo:
        for target in TRANSITIONS[todo.popleft()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen - {start}


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(RunState)
    assert {S.SUCCEEDED, S.FAILED, S.STOPPED, S.INTERRUPTED} == FINAL_STATES


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=str)
def test_check_transition_follows_the_table(current: RunState, target: RunState) -> None:
    if target in TRANSITIONS[current]:
        check_transition("r1", current, target)
        return
    with pytest.raises(IllegalTransition) as caught:
        check_transition("r1", current, target)
    error = caught.value
    assert (error.run_id, error.current, error.target) == ("r1", current, target)
    assert "r1" in str(error)
    assert f"{current.value} → {target.value}" in str(error)


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(state: RunState) -> None:
    assert TRANSITIONS[state] == frozenset()


@pytest.mark.parametrize("state", LIVE_STATES)
def test_every_live_state_can_be_interrupted(state: RunState) -> None:
    # A daemon can die in any live state; the next start must be able to record that.
    assert S.INTERRUPTED in reachable(state)
    assert S.INTERRUPTED in TRANSITIONS[state]


@pytest.mark.parametrize("state", LIVE_STATES)
def test_every_live_state_can_end(state: RunState) -> None:
    assert reachable(state) & FINAL_STATES


def test_every_state_is_reachable_from_queued() -> None:
    assert reachable(S.QUEUED) == set(RunState) - {S.QUEUED}


@pytest.mark.parametrize("state", list(RunState))
def test_is_final_and_is_live(state: RunState) -> None:
    assert state.is_final is (state in FINAL_STATES)
    assert state.is_live is not state.is_final


@pytest.mark.parametrize(
    "path",
    [
        [S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED],
        [S.QUEUED, S.STARTING, S.RUNNING, S.FAILED],
        [S.RUNNING, S.STOPPING, S.STOPPED],
        [S.RUNNING, S.BACKOFF, S.STARTING, S.RUNNING],
        [S.BACKOFF, S.FAILED],  # max_restarts reached
        [S.QUEUED, S.STOPPED],  # stopped before it ever started
    ],
    ids="-".join,
)
def test_design_paths_are_legal(path: list[RunState]) -> None:
    for current, target in itertools.pairwise(path):
        check_transition("r1", current, target)


# --- Run.to_json ----------------------------------------------------------------------------

JSON_KEYS = {
    "id",
    "agent",
    "prompt",
    "cwd",
    "state",
    "pid",
    "exit_code",
    "created_at",
    "started_at",
    "ended_at",
    "restarts",
    "error",
    "cpu_percent",
    "rss_bytes",
    "permission",
    "format",
    "terminal",
    "activity",
    "activity_detail",
    "session_id",
    "model",
    "tokens",
    "cost_usd",
    "num_turns",
    "denials",
    "error_kind",
    "hint",
    "exit_signal",
    "parent",
    "worktree",
    "changes",
    "pending_approval",
}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_to_json_of_a_new_run() -> None:
    run = Run(id="0123456789ab", agent="claude", prompt="fix it", cwd="/src", created_at=0.0)
    data = run.to_json()
    assert set(data) == JSON_KEYS
    assert data["state"] == "queued"
    assert type(data["state"]) is str
    assert data["created_at"] == "1970-01-01T00:00:00.000Z"
    assert data["started_at"] is None
    assert data["ended_at"] is None


def test_to_json_of_a_finished_run() -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, 250000, tzinfo=UTC).timestamp()
    run = Run(
        id="0123456789ab",
        agent="tests",
        prompt="",
        cwd="/src",
        state=RunState.FAILED,
        pid=4321,
        exit_code=3,
        created_at=created,
        started_at=created + 1,
        ended_at=created + 61.5,
        restarts=2,
        error=None,
        pid_started_at=created + 0.5,
        cpu_percent=12.5,
        rss_bytes=1024,
    )
    data = run.to_json()
    assert set(data) == JSON_KEYS  # pid_started_at is internal
    assert data["state"] == "failed"
    assert type(data["state"]) is str
    assert data["created_at"] == "2024-05-06T07:08:09.250Z"
    assert data["started_at"] == "2024-05-06T07:08:10.250Z"
    assert data["ended_at"] == "2024-05-06T07:09:10.750Z"
    for key in ("created_at", "started_at", "ended_at"):
        assert ISO_Z.fullmatch(data[key])
        assert datetime.fromisoformat(data[key]).tzinfo is not None
    assert (data["pid"], data["exit_code"], data["restarts"]) == (4321, 3, 2)
    assert (data["cpu_percent"], data["rss_bytes"]) == (12.5, 1024)
    assert data["exit_signal"] is None


def test_a_signal_death_keeps_its_number_and_gets_its_name() -> None:
    run = Run(id="0123456789ab", agent="a", prompt="p", cwd="/src", exit_code=-15)
    assert (run.to_json()["exit_code"], run.to_json()["exit_signal"]) == (-15, "SIGTERM")
    assert signal_name(-9) == "SIGKILL"
    for code in (None, 0, 3, 143, -100_000):  # 143 is an exit code, not a signal
        assert signal_name(code) is None, code


def test_to_json_of_worktree_and_changes() -> None:
    run = Run(
        id="0123456789ab",
        agent="a",
        prompt="p",
        cwd="/src/app/lib",
        worktree=Worktree(
            "/d/w/0123456789ab/app", "aios/0123456789ab-p", "f" * 40, None, "/src/app"
        ),
        changes=Changes.of(
            [
                FileChange("z.py", ChangeStatus.DELETED, 0, 4),
                FileChange("a.png", ChangeStatus.ADDED, None, None),
            ],
            commits=1,
        ),
    )
    data = run.to_json()
    assert data["worktree"] == {
        "path": "/d/w/0123456789ab/app",
        "branch": "aios/0123456789ab-p",
        "base": "f" * 40,
        "source": None,
        "repo": "/src/app",
        "state": "open",
    }
    assert data["changes"] == {
        "files": [
            {"path": "a.png", "status": "added", "added": None, "deleted": None},
            {"path": "z.py", "status": "deleted", "added": 0, "deleted": 4},
        ],
        "commits": 1,
        "file_count": 2,
        "added": 0,
        "deleted": 4,
    }
    assert Changes.from_json(data["changes"]) == run.changes
    assert Changes.from_json({"files": [{"path": 1}, {"path": "x", "status": "?"}]}) == Changes(
        files=(FileChange("x", ChangeStatus.MODIFIED, None, None),)
    )


def test_changes_list_at_most_500_files_but_count_them_all() -> None:
    many = [FileChange(f"f{i:04d}", ChangeStatus.ADDED, 1, 0) for i in range(MAX_LISTED_FILES + 7)]
    changes = Changes.of(list(reversed(many)), commits=0)
    assert len(changes.files) == MAX_LISTED_FILES and changes.files[0].path == "f0000"
    assert (changes.file_count, changes.added, changes.empty) == (MAX_LISTED_FILES + 7, 507, False)
    assert Changes.of([], 0).empty and not Changes.of([], 1).empty


def test_to_json_leaves_the_run_untouched() -> None:
    run = Run(id="0123456789ab", agent="a", prompt="p", cwd="/", state=RunState.RUNNING)
    run.to_json()
    assert run.state is RunState.RUNNING
    assert isinstance(run.created_at, float)


# --- run ids --------------------------------------------------------------------------------


def test_run_ids_are_12_lowercase_hex_and_unique() -> None:
    ids = [new_run_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{12}", run_id) for run_id in ids)
    assert len(set(ids)) == len(ids)
