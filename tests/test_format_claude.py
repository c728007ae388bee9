"""Claude Code's stream-json, read from the real recordings and the synthetic cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aios.agents.formats import claude, claude_tools
from aios.agents.formats.base import AuthState
from aios.runs import Activity, Denial, FailureKind, Tokens
from tests.fakes.agent import STREAMS
from tests.helpers import fake_agents
from tests.replay import RED, YELLOW, raw_json_in, reducer_for, replay


def test_not_logged_in_is_a_failure_although_the_result_says_success() -> None:
    run = replay("claude-not-logged-in")
    k = run.knowledge
    assert k.session_id == "efceb579-9d2f-4e9c-b18f-071304363bc8"
    assert k.model == "claude-opus-5-5"
    assert k.failure == "Not logged in · Please run /login"
    assert k.failure_kind is FailureKind.AUTH
    assert run.hint and "/login" in run.hint and "ANTHROPIC_API_KEY" in run.hint
    assert f"{RED}✗ Not logged in" in run.text
    # The result says "$0, 1 turn", but no call reached the API: nothing to show.
    assert (k.cost_usd, k.num_turns, k.tokens) == (None, None, None)
    assert "turn" not in run.plain and "$" not in run.plain
    assert not raw_json_in(run.text)


def test_api_retries_without_an_answer_are_offline_with_the_attempt_and_the_next_try() -> None:
    run = replay("claude-api-retry")  # no route to the API: its retries carry no HTTP status
    assert run.after(r'"subtype":"init"').activity is Activity.WORKING
    third = run.after(r'"subtype":"api_retry"', 3)
    assert third.activity is Activity.OFFLINE
    assert third.activity_detail == "API retry 3/10, next in 2.5s"
    # While live, the hint says what to do about it already.
    assert claude.hint(third, None) == claude.HINTS[FailureKind.OFFLINE]
    seventh = run.after(r'"subtype":"api_retry"', 7)
    assert seventh.activity_detail == "API retry 7/10, next in 37s"
    assert f"{YELLOW}↻ API retry 7/10, next in 37s" in run.text
    assert run.knowledge.failure is None  # still trying when it was stopped


def test_giving_up_on_an_unreachable_api_is_offline() -> None:
    run = replay("claude-api-unreachable")
    assert run.after(r'"attempt":10').activity_detail == "API retry 10/10, next in 36s"
    k = run.knowledge
    assert k.failure == (
        "API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)"
    )
    assert k.failure_kind is FailureKind.OFFLINE
    assert k.activity is Activity.WORKING  # the retrying is over
    assert run.hint and "network" in run.hint


def test_an_overloaded_api_is_retried_with_its_status_then_fails_as_api() -> None:
    run = replay("claude-api-overloaded")  # recorded: 529, CLAUDE_CODE_MAX_RETRIES=1
    retry = run.after(r'"subtype":"api_retry"')
    assert retry.activity is Activity.RETRYING
    assert retry.activity_detail is not None
    assert retry.activity_detail.startswith("API retry 1/1 (HTTP 529), next in ")
    k = run.knowledge
    assert k.failure is not None and k.failure.startswith("API Error: 529 Overloaded")
    assert k.failure_kind is FailureKind.API
    assert k.activity is Activity.WORKING  # the retrying is over
    assert run.hint == claude.HINTS[FailureKind.API]
    assert (k.cost_usd, k.num_turns) == (None, None)  # it never got an answer


@pytest.mark.parametrize(
    ("scenario", "said"),
    [
        ("claude-api-refused", "API Error: Connection refused — a firewall or proxy may be"),
        ("claude-connection-lost", "API Error: Connection to the API was lost (ECONNRESET)"),
    ],
)
def test_a_refused_or_lost_connection_is_offline(scenario: str, said: str) -> None:
    run = replay(scenario)  # recorded: a closed port; an API that hangs up mid-answer
    k = run.knowledge
    assert k.failure is not None and k.failure.startswith(said)
    assert k.failure_kind is FailureKind.OFFLINE
    assert run.hint == claude.HINTS[FailureKind.OFFLINE]
    # Both retried once with no HTTP status: offline while it lasted.
    assert run.after(r'"subtype":"api_retry"').activity is Activity.OFFLINE


def test_a_failed_connection_is_offline_by_its_api_error_whatever_its_words() -> None:
    _, reducer = reducer_for("claude")
    message = {
        "id": "m1",
        "model": "<synthetic>",
        "content": [{"type": "text", "text": "API Error: no"}],
    }
    event = {"type": "assistant", "message": message, "error": "server_error"}
    reducer.stdout(json.dumps({**event, "api_error": "connection_failed"}))
    assert reducer.knowledge.failure_kind is FailureKind.OFFLINE
    _, older = reducer_for("claude")  # without it, a server error is the API's
    older.stdout(json.dumps(event))
    assert older.knowledge.failure_kind is FailureKind.API


def test_a_resumed_session_that_is_gone() -> None:
    run = replay("claude-resume-missing")
    k = run.knowledge
    assert k.failure_kind is FailureKind.SESSION_GONE
    assert k.failure and "No conversation found with session ID" in k.failure
    assert run.hint and "new run" in run.hint
    # The result alone says so too.
    _, reducer = reducer_for("claude")
    reducer.stdout((STREAMS / "claude-resume-missing.jsonl").read_text().strip())
    assert reducer.knowledge.failure_kind is FailureKind.SESSION_GONE


def test_a_successful_run_with_tools_usage_and_cost() -> None:
    run = replay("claude-success")
    k = run.knowledge
    assert k.session_id == "61514ba3-a55d-4e6e-b654-fe0e2b818af3"
    assert k.model == "claude-opus-5-5"
    assert k.cost_usd == pytest.approx(0.01512)
    assert k.num_turns == 3
    assert k.tokens == Tokens(input=3600, output=36, cached=0)  # result.usage
    assert k.failure is None and k.denials == ()
    assert run.hint is None
    plain = run.plain
    assert "I'll create hello.py and show it." in plain
    assert "● Write(hello.py)" in plain  # relative to the session's directory
    assert "● Bash(cat hello.py)" in plain
    assert '  └ print("hello, world")' in plain
    assert "Created `hello.py`." in plain
    assert plain.endswith("✓ done · 3 turns · 0.2s · $0.0151\n")
    assert not raw_json_in(run.text)


def test_usage_counts_each_message_once_with_its_latest_figure() -> None:
    run = replay("claude-success")
    # msg_0001 comes twice (one event per content block, its words, then its Write): counted
    # once. (2.1.332 gives each the usage the message started with; the result has the rest.)
    assert run.after(r'"name":"Write"').tokens == Tokens(input=1100, output=1, cached=0)
    assert run.after(r'"name":"Bash"').tokens == Tokens(input=1100 + 1200, output=2, cached=0)


def test_the_result_usage_wins_unless_it_is_smaller_than_the_messages() -> None:
    message = {"id": "m1", "content": [], "usage": {"input_tokens": 500, "output_tokens": 50}}
    for reported, expected in (
        ({"input_tokens": 900, "output_tokens": 70}, Tokens(900, 70, 0)),  # the whole run
        ({"input_tokens": 20, "output_tokens": 5}, Tokens(500, 50, 0)),  # only the last call
        (None, Tokens(500, 50, 0)),
    ):
        _, reducer = reducer_for("claude")
        reducer.stdout(json.dumps({"type": "assistant", "message": message}))
        reducer.stdout(json.dumps({"type": "result", "subtype": "success", "usage": reported}))
        assert reducer.knowledge.tokens == expected
    _, only = reducer_for("claude")
    only.stdout(json.dumps({"type": "result", "usage": {"cache_read_input_tokens": 7}}))
    assert only.knowledge.tokens == Tokens(0, 0, 7)


def test_denied_actions_are_listed_and_the_run_still_succeeds() -> None:
    run = replay("claude-denied")
    # Each denial is known as it happens (system/permission_denied names the call's id).
    first = run.after(r'"subtype":"permission_denied"')
    assert first.denials == (Denial("Write", "hello.py"),)
    assert "permission_denied" not in run.plain
    k = run.knowledge
    assert k.denials == (
        Denial("Write", "hello.py"),
        Denial("Bash", """printf 'print("hello, world")\\n' > hello.py"""),
    )
    assert k.failure is None
    assert run.hint and "permission" in run.hint
    assert "⊘ denied: Write(hello.py), Bash(" in run.plain
    assert RED in run.text  # the refused tool results
    # Nothing held for a call whose result came: a long session's memory stays flat.
    assert isinstance(run.reducer, claude.ClaudeReducer) and run.reducer._calls == {}


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ({"subtype": "success", "is_error": True, "result": "boom"}, FailureKind.OTHER),
        ({"subtype": "error_max_turns", "is_error": True, "num_turns": 9}, FailureKind.TURN_LIMIT),
        ({"subtype": "error_during_execution", "errors": ["Invalid API key"]}, FailureKind.AUTH),
        (
            {"subtype": "success", "is_error": True, "result": "API Error: 529 overloaded"},
            FailureKind.API,
        ),
    ],
)
def test_is_error_and_error_subtypes_fail(result: dict[str, object], kind: FailureKind) -> None:
    _, reducer = reducer_for("claude")
    text = reducer.stdout(json.dumps({"type": "result", **result}))
    assert reducer.knowledge.failure_kind is kind
    assert text.startswith(f"{RED}✗ ")
    _, ok = reducer_for("claude")
    ok.stdout(json.dumps({"type": "result", "subtype": "success", "is_error": False}))
    assert ok.knowledge.failure is None


@pytest.mark.parametrize(
    ("tool", "arguments", "shown"),
    [
        ("Bash", {"command": "npm test", "description": "Run the tests"}, "npm test"),
        ("Write", {"file_path": "/home/me/src/app/src/hello.py", "content": "x"}, "src/hello.py"),
        ("Edit", {"file_path": "/elsewhere/a.py"}, "/elsewhere/a.py"),
        ("Grep", {"pattern": "TODO", "path": "src"}, "TODO"),
        ("WebFetch", {"url": "https://example.org", "prompt": "summarize"}, "https://example.org"),
        ("TodoWrite", {"todos": [{}, {}, {}]}, "3 todos"),
        ("mcp__github__create_issue", {"title": "x", "path": "a/b"}, "a/b"),
        ("Bash", "not an object", ""),
        ("Bash", {"command": "a\nvery   long\n" + "x" * 500}, "a very long " + "x" * 107 + "…"),
    ],
)
def test_the_key_argument_of_a_tool_call(tool: str, arguments: object, shown: str) -> None:
    assert claude_tools.key_argument(tool, arguments, "/home/me/src/app") == shown


def test_stderr_is_dim_and_errors_are_red() -> None:
    _, reducer = reducer_for("claude")
    assert reducer.stderr("some note") == "\x1b[2msome note\x1b[0m\n"
    assert reducer.stderr("Error: something broke").startswith(RED)
    assert reducer.knowledge.failure is None


def test_partial_messages_and_hooks_are_not_shown() -> None:
    _, reducer = reducer_for("claude")
    assert reducer.stdout('{"type":"stream_event","event":{"type":"content_block_delta"}}') == ""
    assert reducer.stdout('{"type":"system","subtype":"hook_started","hook_name":"x"}') == ""
    assert "[system/something_new]" in reducer.stdout(
        '{"type":"system","subtype":"something_new","data":{"a":1}}'
    )


# The login check, against the fake CLI (tests/fakes/agent.py answers like the real one).


@pytest.fixture
def fake_claude(tmp_path: Path) -> str:
    return str(fake_agents(tmp_path / "bin", "claude") / "claude")


@pytest.mark.parametrize(
    ("answer", "state"),
    [
        ("logged_in", AuthState.LOGGED_IN),
        ("not_logged_in", AuthState.NOT_LOGGED_IN),
        ("garbage", AuthState.UNKNOWN),
    ],
)
def test_auth_asks_claude_auth_status(fake_claude: str, answer: str, state: AuthState) -> None:
    assert claude.auth(fake_claude, {"AIOS_FAKE_AUTH": answer}) is state


def test_auth_that_never_answers_is_unknown(fake_claude: str) -> None:
    assert claude.auth(fake_claude, {"AIOS_FAKE_AUTH": "hang"}, timeout=0.5) is AuthState.UNKNOWN


def test_auth_without_the_executable_is_unknown(tmp_path: Path) -> None:
    assert claude.auth(str(tmp_path / "nowhere" / "claude"), {}) is AuthState.UNKNOWN
    assert claude.FORMAT.auth is claude.auth
