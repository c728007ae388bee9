"""Gemini CLI's stream-json and its stderr, from the recording and the synthetic cases; its login
check from the environment and the files in a temporary home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aios.agents.formats import gemini
from aios.agents.formats.base import AuthState, Knowledge
from aios.runs import Activity, Denial, FailureKind, Tokens
from tests.replay import RED, YELLOW, raw_json_in, reducer_for, replay


def test_silent_on_stdout_while_it_retries_on_stderr() -> None:
    run = replay("gemini-silent-retry")
    assert run.knowledge.session_id == "8dbb99ef-104a-4afa-b18d-6a05bd260baf"
    assert run.knowledge.model == "auto"
    assert run.after('"type":"init"').activity is Activity.WORKING
    third = run.after("Attempt 3 failed")
    # "fetch failed": no answer at all, so offline (with its hint while it lasts).
    assert (third.activity, third.activity_detail) == (
        Activity.OFFLINE,
        "cannot reach the API: attempt 3 failed, retrying",
    )
    assert gemini.hint(third, None) == gemini.HINTS[FailureKind.OFFLINE]
    assert f"{YELLOW}↻ Attempt 3 failed." in run.text
    assert run.knowledge.failure is None
    assert "write hello.py" not in run.plain  # the prompt echoed back is not shown


def test_the_retries_end_in_an_offline_failure() -> None:
    run = replay("gemini-offline")
    k = run.knowledge
    assert k.failure == "exception TypeError: fetch failed sending request"
    assert k.failure_kind is FailureKind.OFFLINE
    assert k.activity is Activity.WORKING
    assert run.hint and "network" in run.hint


def test_a_quota_error_is_retried_with_its_status_then_fails_as_api_not_auth() -> None:
    run = replay("gemini-quota")  # recorded: 429, general.maxAttempts = 2
    first = run.after("Attempt 1 failed")
    assert (first.activity, first.activity_detail) == (
        Activity.RETRYING,
        "attempt 1 failed (HTTP 429), retrying",
    )
    k = run.knowledge
    # Its words end "… or switch to another /auth method": still a quota, not a login.
    assert k.failure is not None and "Quota exceeded" in k.failure and "/auth" in k.failure
    assert k.failure_kind is FailureKind.API
    assert k.activity is Activity.WORKING
    assert run.exit_code == 173 and run.hint == gemini.HINTS[FailureKind.API]


def test_a_closed_port_is_offline_while_it_retries_and_after() -> None:
    run = replay("gemini-refused")  # recorded: its router's retries, then the main call's
    first = run.after("Attempt 1 failed")
    assert first.activity is Activity.OFFLINE
    assert gemini.hint(first, None) == gemini.HINTS[FailureKind.OFFLINE]
    k = run.knowledge
    assert k.failure == "[API Error: exception TypeError: fetch failed sending request]"
    assert k.failure_kind is FailureKind.OFFLINE
    assert k.activity is Activity.WORKING and run.hint == gemini.HINTS[FailureKind.OFFLINE]


def test_a_stream_cut_off_is_not_retried_and_is_offline() -> None:
    run = replay("gemini-stream-dropped")  # recorded: the API hangs up mid-answer
    k = run.knowledge
    assert k.failure == "[API Error: terminated]"
    assert k.failure_kind is FailureKind.OFFLINE
    assert run.hint == gemini.HINTS[FailureKind.OFFLINE]
    assert not [s for s in run.steps if s[2].activity is Activity.RETRYING]


def test_a_successful_run_with_tools_and_stats() -> None:
    run = replay("gemini-success")
    k = run.knowledge
    assert run.after('"type":"init"').model == "auto"  # the model asked for, until the result
    assert (k.session_id, k.model) == ("3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7", "gemini-2.5-pro")
    assert k.tokens == Tokens(input=5024, output=292, cached=4096)
    assert k.failure is None and k.cost_usd is None and k.denials == ()
    plain = run.plain
    assert "I'll create `hello.py` and run it.\n" in plain  # pieces joined into a line
    assert "Done: `hello.py` prints `hello, world`.\n" in plain  # flushed by the result
    assert "● write_file(hello.py)" in plain
    assert "● run_shell_command(python3 hello.py)" in plain
    assert "  └ hello, world" in plain
    assert plain.endswith(
        "✓ done · 4.2s · 2 tool calls · 9,120 tokens in (4,096 cached), 292 out\n"
    )
    assert not raw_json_in(run.text)


def test_the_model_is_the_one_that_answered_most() -> None:
    _, reducer = reducer_for("gemini")
    reducer.stdout('{"type":"init","session_id":"s","model":"auto"}')
    reducer.stdout(
        '{"type":"result","status":"success","stats":{"models":'
        '{"flash":{"total_tokens":10},"pro":{"total_tokens":900},"bad":null}}}'
    )
    assert reducer.knowledge.model == "pro"
    reducer.stdout('{"type":"result","status":"success","stats":{"models":{}}}')
    assert reducer.knowledge.model == "pro"  # a result that names none keeps what was known


def test_a_tool_that_needs_confirmation_is_a_denial() -> None:
    run = replay("gemini-denied")
    k = run.knowledge
    assert k.denials == (Denial("write_file", "hello.py"),)
    assert k.failure is None
    assert run.hint == gemini.NEEDED_CONFIRMATION
    assert "⊘ needs confirmation" in run.plain
    assert f"{RED}Error executing" not in run.text  # the same refusal on stderr is no error


def test_a_policy_denial_too_and_other_tool_errors_are_red() -> None:
    _, reducer = reducer_for("gemini")
    reducer.stdout(
        '{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t1",'
        '"parameters":{"command":"rm -rf /"}}'
    )
    reducer.stdout(
        '{"type":"tool_result","tool_id":"t1","status":"error",'
        '"error":{"type":"policy_violation","message":"Tool execution denied by policy."}}'
    )
    assert reducer.knowledge.denials == (Denial("run_shell_command", "rm -rf /"),)
    text = reducer.stdout(
        '{"type":"tool_result","tool_id":"t2","status":"error",'
        '"error":{"type":"file_not_found","message":"File not found: a.py"}}'
    )
    assert text.startswith(RED) and "File not found: a.py" in text
    assert len(reducer.knowledge.denials) == 1


def test_not_logged_in_exits_41() -> None:
    run = replay("gemini-not-logged-in")
    assert run.knowledge.failure_kind is FailureKind.AUTH
    assert run.knowledge.failure and run.knowledge.failure.startswith("Please set an Auth method")
    assert run.hint and "GEMINI_API_KEY" in run.hint and "`gemini`" in run.hint
    assert gemini.hint(Knowledge(), 41) == run.hint  # the exit code alone says it


def test_an_untrusted_folder_exits_55() -> None:
    run = replay("gemini-untrusted")
    assert run.knowledge.failure_kind is FailureKind.UNTRUSTED_DIR
    assert run.hint and "trust" in run.hint.lower() and "--skip-trust" in run.hint


@pytest.mark.parametrize(("code", "kind"), sorted(gemini.EXIT_KINDS.items()))
def test_exit_codes_name_the_failure(code: int, kind: FailureKind) -> None:
    _, reducer = reducer_for("gemini")
    reducer.exited(code)
    assert reducer.knowledge.failure_kind is kind
    assert reducer.knowledge.failure and str(code) in reducer.knowledge.failure
    assert gemini.hint(reducer.knowledge, code)
    # A failure the stream already described keeps its words and gets the exit code's kind.
    _, said = reducer_for("gemini")
    said.stdout('{"type":"result","status":"error","error":{"type":"Error","message":"odd"}}')
    said.exited(code)
    assert (said.knowledge.failure, said.knowledge.failure_kind) == ("odd", kind)


def test_result_error_types_and_warnings() -> None:
    _, reducer = reducer_for("gemini")
    text = reducer.stdout(
        '{"type":"result","status":"error","error":{"type":"FatalTurnLimitedError",'
        '"message":"Reached max session turns for this session."}}'
    )
    assert reducer.knowledge.failure_kind is FailureKind.TURN_LIMIT
    assert text.startswith(f"{RED}✗ Reached max session turns")
    _, other = reducer_for("gemini")
    warning = other.stdout(
        '{"type":"error","severity":"warning","message":"Loop detected, stopping execution"}'
    )
    assert warning.startswith(YELLOW) and other.knowledge.failure is None


def test_text_left_without_a_newline_is_flushed_at_the_end() -> None:
    _, reducer = reducer_for("gemini")
    assert (
        reducer.stdout('{"type":"message","role":"assistant","content":"Hal","delta":true}') == ""
    )
    assert (
        reducer.stdout('{"type":"message","role":"assistant","content":"f a ","delta":true}') == ""
    )
    reducer.exited(0)
    assert reducer.ending() == "Half a \n"
    _, endless = reducer_for("gemini")
    piece = json.dumps(
        {"type": "message", "role": "assistant", "content": "x" * 3000, "delta": True}
    )
    assert endless.stdout(piece) == ""
    assert endless.stdout(piece) == "x" * 6000 + "\n"  # past HELD_BACK, shown without its end
    blank = json.dumps({"type": "message", "role": "assistant", "content": "\n", "delta": True})
    assert endless.stdout(blank) == "\n"


# The login check: gemini has no status command, so its variables and files decide.


def home_with(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    for name, text in files.items():
        path = tmp_path / ".gemini" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"HOME": str(tmp_path)}


SELECTED = json.dumps({"security": {"auth": {"selectedType": "oauth-personal"}}})
COMMENTED = '// mine\n{"security": {"auth": {"selectedType": "vertex-ai"}}}'


@pytest.mark.parametrize(
    ("env", "files", "state"),
    [
        ({"GEMINI_API_KEY": "k"}, {}, AuthState.LOGGED_IN),
        ({"GOOGLE_GENAI_USE_VERTEXAI": "true"}, {}, AuthState.LOGGED_IN),
        ({"GOOGLE_GENAI_USE_GCA": "true"}, {}, AuthState.LOGGED_IN),
        ({"GOOGLE_GENAI_USE_GCA": "false"}, {}, AuthState.NOT_LOGGED_IN),
        ({}, {"settings.json": SELECTED}, AuthState.LOGGED_IN),
        ({}, {"settings.json": '{"selectedAuthType": "gemini-api-key"}'}, AuthState.LOGGED_IN),
        ({}, {"settings.json": COMMENTED}, AuthState.LOGGED_IN),
        ({}, {"settings.json": '{"ui": {"theme": "Default"}}'}, AuthState.NOT_LOGGED_IN),
        ({}, {"settings.json": "{ not json"}, AuthState.NOT_LOGGED_IN),
        ({}, {"oauth_creds.json": "{}"}, AuthState.LOGGED_IN),
        ({"GOOGLE_API_KEY": "k"}, {}, AuthState.UNKNOWN),
        ({}, {}, AuthState.NOT_LOGGED_IN),
    ],
)  # fmt: skip
def test_auth_from_variables_and_files(
    tmp_path: Path, env: dict[str, str], files: dict[str, str], state: AuthState
) -> None:
    assert gemini.auth("gemini", {**home_with(tmp_path, files), **env}) is state


def test_auth_follows_gemini_cli_home_and_needs_a_home(tmp_path: Path) -> None:
    home_with(tmp_path / "other", {"oauth_creds.json": "{}"})
    env = {"HOME": str(tmp_path), "GEMINI_CLI_HOME": str(tmp_path / "other")}
    assert gemini.auth("gemini", env) is AuthState.LOGGED_IN
    assert gemini.auth("gemini", {}) is AuthState.UNKNOWN


def test_auth_with_an_unreadable_settings_file_does_not_raise(tmp_path: Path) -> None:
    (tmp_path / ".gemini" / "settings.json").mkdir(parents=True)  # a directory, not a file
    assert gemini.auth("gemini", {"HOME": str(tmp_path)}) is AuthState.NOT_LOGGED_IN
