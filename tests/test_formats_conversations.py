"""What the formats know of conversations: lost sessions, and claude's two-way requests."""

from __future__ import annotations

import json

from aios.agents.formats import claude, codex, gemini
from aios.agents.formats.base import SessionStart
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
    reducer.stdout(json.dumps({"type": "control_cancel_request", "request_id": "req-1"}))
    assert k.drain() == ((), ("req-1",))
    # A withdrawn request's input is forgotten: an answer to it sends back nothing it asked with.
    assert json.loads(reducer.reply("req-1", True, "", False)[0])["response"]["response"] == {
        "behavior": "allow",
        "updatedInput": {},
    }
    reducer.stdout(json.dumps({"type": "result", "subtype": "success", "is_error": False}))
    assert k.activity is Activity.WAITING and k.failure is None
    # 2.1.332 says init again as each turn starts: shown once, and the turn is under way.
    init = {"type": "system", "subtype": "init", "session_id": "s1", "model": "m"}
    assert "session s1" in reducer.stdout(json.dumps(init))
    reducer.stdout(json.dumps({"type": "result", "subtype": "success", "is_error": False}))
    assert reducer.stdout(json.dumps(init)) == ""
    assert reducer.knowledge.activity is Activity.WORKING  # mypy keeps k.activity narrowed


def test_the_answers_claude_reads() -> None:
    reducer = claude.ClaudeReducer()
    ask = {
        "type": "control_request",
        "request_id": "req-1",
        "request": {"subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "ls"}},
    }
    reducer.stdout(json.dumps(ask))
    allow = json.loads(reducer.reply("req-1", True, "", False)[0])
    assert allow["response"] == {
        "subtype": "success",
        "request_id": "req-1",
        "response": {"behavior": "allow", "updatedInput": {"command": "ls"}},
    }
    deny = json.loads(reducer.reply("req-2", False, "not now", False)[0])
    assert deny["response"]["response"] == {"behavior": "deny", "message": "not now"}
    assert json.loads(reducer.say("--hi")[0])["message"] == {"role": "user", "content": "--hi"}
    opening = reducer.open(SessionStart("--first", "/tmp"))
    assert json.loads(opening[0])["request"]["subtype"] == "initialize"
    assert json.loads(opening[1])["message"]["content"] == "--first"
