"""What the formats know of conversations: lost sessions, and claude's two-way requests."""

from __future__ import annotations

import json

from aios.agents.formats import claude, codex, gemini
from aios.runs import Activity, Approval, FailureKind


def test_a_lost_session_is_session_gone_for_each_cli() -> None:
    reducer = codex.FORMAT.reducer and codex.FORMAT.reducer()
    assert reducer is not None
    reducer.stderr("Error: thread/resume failed: no rollout found for thread id 01a2")
    reducer.exited(1)
    assert reducer.knowledge.failure_kind is FailureKind.SESSION_GONE
    assert "start afresh" in (codex.FORMAT.hint(reducer.knowledge, 1) or "")

    reducer = gemini.FORMAT.reducer and gemini.FORMAT.reducer()
    assert reducer is not None
    reducer.stderr('Invalid session identifier "8dbb99ef". Searched for sessions in /x.')
    reducer.exited(42)
    assert reducer.knowledge.failure_kind is FailureKind.SESSION_GONE

    reducer = claude.FORMAT.reducer and claude.FORMAT.reducer()
    assert reducer is not None
    reducer.stderr("No conversation found with session ID: 7486375f")
    reducer.exited(1)
    assert reducer.knowledge.failure_kind is FailureKind.SESSION_GONE


def test_claude_two_way_requests_wait_for_the_user_and_turns_end_waiting() -> None:
    reducer = claude.ClaudeReducer()
    reducer.two_way = True
    k = reducer.knowledge
    ask = {
        "type": "control_request",
        "request_id": "req-1",
        "request": {"subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "ls"}},
    }
    text = reducer.stdout(json.dumps(ask))
    assert "Bash(ls) needs your approval" in text
    # The request is handed on (the lifecycle core keeps what is pending, and says the run
    # awaits approval: tests/test_run_lifecycle.py).
    assert k.drain() == ((Approval("req-1", "Bash", "ls"),), ())
    assert k.drain() == ((), ())
    assert reducer.approval_inputs["req-1"] == {"command": "ls"}
    reducer.stdout(json.dumps({"type": "control_cancel_request", "request_id": "req-1"}))
    assert k.drain() == ((), ("req-1",)) and "req-1" not in reducer.approval_inputs
    reducer.stdout(json.dumps({"type": "result", "subtype": "success", "is_error": False}))
    assert k.activity is Activity.WAITING and k.failure is None


def test_the_answers_claude_reads() -> None:
    two_way = claude.FORMAT.two_way
    assert two_way is not None
    allow = json.loads(two_way.answer("req-1", True, "", {"command": "ls"}))
    assert allow["response"] == {
        "subtype": "success",
        "request_id": "req-1",
        "response": {"behavior": "allow", "updatedInput": {"command": "ls"}},
    }
    deny = json.loads(two_way.answer("req-2", False, "not now", {}))
    assert deny["response"]["response"] == {"behavior": "deny", "message": "not now"}
    assert json.loads(two_way.message("--hi"))["message"] == {"role": "user", "content": "--hi"}
    assert json.loads(two_way.opening()[0])["request"]["subtype"] == "initialize"
