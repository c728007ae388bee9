"""What the formats know of conversations: lost sessions, and claude's two-way requests."""

from __future__ import annotations

import json
from typing import Any

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


# A request as Claude Code 2.1.332 sends it (tests/test_real_two_way_claude.py sees it so).
COMMAND = "python3 -c \"open('ran.txt', 'a').write('ran ')\""
SUGGESTED: dict[str, Any] = {
    "type": "addRules",
    "rules": [{"toolName": "Bash", "ruleContent": COMMAND}],
    "behavior": "allow",
    "destination": "localSettings",
}
ASKS: dict[str, Any] = {
    "type": "control_request",
    "request_id": "req-1",
    "request": {
        "subtype": "can_use_tool",
        "tool_name": "Bash",
        "display_name": "Bash",
        "input": {"command": COMMAND, "description": "Append to ran.txt"},
        "description": "Append to ran.txt",
        "permission_suggestions": [SUGGESTED],
        "decision_reason": "This command requires approval",
        "decision_reason_type": "other",
        "tool_use_id": "toolu_0001",
    },
}


def answer(reducer: claude.ClaudeReducer, allow: bool, always: bool) -> dict[str, object]:
    """What ``reply`` sends for req-1, asked anew."""
    reducer.stdout(json.dumps(ASKS))
    reducer.knowledge.drain()
    sent: dict[str, object] = json.loads(reducer.reply("req-1", allow, "", always)[0])
    return sent


def test_claude_offers_always_where_it_suggests_rules_and_keeps_them_to_the_session() -> None:
    reducer = claude.ClaudeReducer()
    reducer.stdout(json.dumps(ASKS))
    assert reducer.knowledge.drain() == ((Approval("req-1", "Bash", COMMAND, always=True),), ())
    sent = json.loads(reducer.reply("req-1", True, "", True)[0])
    assert sent["response"] == {
        "subtype": "success",
        "request_id": "req-1",
        "response": {
            "behavior": "allow",
            "updatedInput": {"command": COMMAND, "description": "Append to ran.txt"},
            "updatedPermissions": [{**SUGGESTED, "destination": "session"}],
        },
    }
    # Allowed once or denied, the suggestions are not applied.
    once = answer(reducer, allow=True, always=False)
    assert "updatedPermissions" not in json.dumps(once)
    denied = answer(reducer, allow=False, always=True)
    assert "updatedPermissions" not in json.dumps(denied)


def test_always_never_writes_a_settings_file_whatever_claude_suggests() -> None:
    suggested = [
        {**SUGGESTED, "destination": "userSettings"},
        {**SUGGESTED, "destination": "projectSettings"},
        {"type": "addDirectories", "directories": ["/tmp/x"], "destination": "cliArg"},
        "not a suggestion",
    ]
    request = {**ASKS, "request": {**ASKS["request"], "permission_suggestions": suggested}}
    reducer = claude.ClaudeReducer()
    reducer.stdout(json.dumps(request))
    sent = json.loads(reducer.reply("req-1", True, "", True)[0])
    updates = sent["response"]["response"]["updatedPermissions"]
    assert [u["destination"] for u in updates] == ["session"] * 3
    assert [u["type"] for u in updates] == ["addRules", "addRules", "addDirectories"]


def test_always_never_changes_the_mode_or_takes_rules_away() -> None:
    # "Always" widens what the request asked for, no more: a mode (bypassPermissions would run
    # anything without asking) or removed and replaced rules are not passed on; with only such
    # suggestions, there is no "always" to offer.
    suggested = [
        {"type": "setMode", "mode": "bypassPermissions", "destination": "session"},
        {"type": "setMode", "mode": "acceptEdits", "destination": "localSettings"},
        {**SUGGESTED, "type": "replaceRules"},
        {**SUGGESTED, "type": "removeRules"},
        {**SUGGESTED, "behavior": "deny"},
    ]
    request = {**ASKS, "request": {**ASKS["request"], "permission_suggestions": suggested}}
    reducer = claude.ClaudeReducer()
    reducer.stdout(json.dumps(request))
    (approval,), _ = reducer.knowledge.drain()
    assert approval.always is False
    sent = json.loads(reducer.reply("req-1", True, "", True)[0])
    assert "updatedPermissions" not in sent["response"]["response"]


def test_a_claude_that_suggests_nothing_offers_no_always() -> None:
    reducer = claude.ClaudeReducer()
    for request_id, suggested in (("old", None), ("none", []), ("odd", "rules")):
        request: dict[str, Any] = {**ASKS["request"], "permission_suggestions": suggested}
        if suggested is None:  # an older CLI sends none at all
            del request["permission_suggestions"]
        reducer.stdout(json.dumps({**ASKS, "request_id": request_id, "request": request}))
        (approval,), _ = reducer.knowledge.drain()
        assert approval.always is False
        sent = json.loads(reducer.reply(request_id, True, "", True)[0])
        assert "updatedPermissions" not in sent["response"]["response"]
    # A withdrawn request's suggestions are forgotten with it.
    reducer.stdout(json.dumps(ASKS))
    reducer.stdout(json.dumps({"type": "control_cancel_request", "request_id": "req-1"}))
    sent = json.loads(reducer.reply("req-1", True, "", True)[0])
    assert "updatedPermissions" not in sent["response"]["response"]
