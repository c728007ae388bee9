"""Codex's exec --json stream and its stderr, read from the recording and the synthetic cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aios.agents.formats import codex
from aios.agents.formats.base import AuthState, Login
from aios.runs import Activity, Denial, FailureKind, Tokens
from tests.helpers import fake_agents
from tests.replay import RED, YELLOW, raw_json_in, reducer_for, replay


def test_reconnecting_then_waiting_for_the_network() -> None:
    run = replay("codex-reconnect")
    assert run.knowledge.session_id == "01a23427-d17f-78e0-a415-289e227cb3ab"
    assert run.after(r'"turn.started"').activity is Activity.WORKING
    third = run.after(r"Reconnecting\.\.\. 3/5")
    assert (third.activity, third.activity_detail) == (Activity.RETRYING, "reconnecting 3/5")
    waiting = run.after("waiting for network")
    assert (waiting.activity, waiting.activity_detail) == (Activity.OFFLINE, "waiting for network")
    assert run.knowledge.activity is Activity.OFFLINE
    # The tracing lines on stderr are logging, not a verdict; a warning item is no progress.
    assert run.knowledge.failure is None
    assert run.after("Falling back").activity is Activity.RETRYING
    assert run.hint and "network" in run.hint
    assert codex.hint(run.knowledge, None) == run.hint  # the same words while it waits, live
    # The same "waiting for network" line again and again is shown once.
    assert run.plain.count("waiting for network") == 1
    assert "\x1b[2m2026-12-02T00:29:14.201Z ERROR codex_api" in run.text
    assert not raw_json_in(run.text)


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [("codex-server-error", FailureKind.API), ("codex-stream-dropped", FailureKind.OFFLINE)],
)
def test_a_stream_retried_then_given_up_fails_with_a_hint(scenario: str, kind: FailureKind) -> None:
    run = replay(scenario)  # recorded: a 500 each time; the API hanging up mid-answer
    retry = run.after(r"Reconnecting\.\.\. 1/1")
    assert (retry.activity, retry.activity_detail) == (Activity.RETRYING, "reconnecting 1/1")
    k = run.knowledge
    assert k.failure is not None and k.failure_kind is kind, k.failure
    assert k.activity is Activity.WORKING  # no longer reconnecting: the turn failed
    assert run.hint == codex.HINTS[kind]
    assert k.num_turns is None  # no answer came


def test_a_successful_turn_with_commands_file_changes_and_usage() -> None:
    run = replay("codex-success")
    k = run.knowledge
    assert k.session_id == "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    assert k.tokens == Tokens(input=24180 - 19072, output=611, cached=19072)
    assert k.num_turns == 1
    assert k.failure is None and k.cost_usd is None  # codex reports no cost: none is made up
    plain = run.plain
    assert "$ /bin/bash -lc 'python3 hello.py'" in plain
    assert plain.count("$ /bin/bash -lc 'python3 hello.py'") == 1  # started, then completed
    assert "  └ hello, world" in plain
    assert "● Add(/home/me/src/app/hello.py)" in plain
    assert "● Update(/home/me/src/app/README.md)" in plain
    assert "Added `hello.py`, which prints `hello, world`" in plain
    assert "✓ done · 1 turn · 24,180 tokens in (19,072 cached), 611 out" in plain
    assert not raw_json_in(run.text)


def test_usage_is_summed_over_turns() -> None:
    _, reducer = reducer_for("codex")
    for usage in ((1000, 200, 50), (3000, 2500, 70)):
        reducer.stdout('{"type":"turn.started"}')
        given, cached, output = usage
        reducer.stdout(
            json.dumps(
                {
                    "type": "turn.completed",
                    "usage": {
                        "input_tokens": given,
                        "cached_input_tokens": cached,
                        "output_tokens": output,
                    },
                }
            )
        )
    assert reducer.knowledge.tokens == Tokens(input=800 + 500, output=120, cached=2700)
    assert reducer.knowledge.num_turns == 2


def test_not_logged_in_fails_the_turn() -> None:
    run = replay("codex-not-logged-in")
    k = run.knowledge
    assert k.failure and k.failure.startswith("unexpected status 401 Unauthorized")
    assert k.failure_kind is FailureKind.AUTH
    assert k.activity is Activity.WORKING  # no longer reconnecting once the turn failed
    assert run.hint and "codex login" in run.hint
    assert f"{RED}✗ unexpected status 401" in run.text
    # turn.started came, but the API refused it before any answer: no turn, no tokens.
    assert (k.num_turns, k.tokens, k.cost_usd) == (None, None, None)
    assert replay("codex-reconnect").knowledge.num_turns is None


def test_outside_a_git_repository() -> None:
    run = replay("codex-untrusted-dir")
    k = run.knowledge
    assert k.failure_kind is FailureKind.UNTRUSTED_DIR
    assert run.hint and "git" in run.hint and "--skip-git-repo-check" in run.hint
    assert run.text.startswith(RED)
    assert run.plain.endswith(
        "✗ Not inside a trusted directory and --skip-git-repo-check was not specified.\n"
    )


def test_a_declined_command_is_a_denial_and_a_failed_one_is_red() -> None:
    _, reducer = reducer_for("codex")
    item = {"id": "item_1", "type": "command_execution", "command": "rm -rf build"}
    declined = {**item, "aggregated_output": "", "exit_code": None, "status": "declined"}
    text = reducer.stdout(json.dumps({"type": "item.completed", "item": declined}))
    assert reducer.knowledge.denials == (Denial("command", "rm -rf build"),)
    assert "$ rm -rf build" in text and YELLOW in text
    failed = {
        **item,
        "id": "item_2",
        "aggregated_output": "boom\n",
        "exit_code": 2,
        "status": "failed",
    }
    text = reducer.stdout(json.dumps({"type": "item.completed", "item": failed}))
    assert f"{RED}  └ exit 2\n    boom" in text
    assert reducer.knowledge.failure is None  # a failed command is the agent's business
    assert codex.hint(reducer.knowledge, 0) == codex.DECLINED


def test_mcp_web_search_todos_and_unknown_items() -> None:
    _, reducer = reducer_for("codex")
    mcp = {"id": "i1", "type": "mcp_tool_call", "server": "docs", "tool": "search"}
    text = reducer.stdout(
        json.dumps({"type": "item.started", "item": {**mcp, "arguments": {"q": "sqlite wal"}}})
    )
    assert "● docs.search(sqlite wal)" in text
    done = {**mcp, "status": "completed", "result": {"content": [{"type": "text", "text": "WAL"}]}}
    assert "  └ WAL" in reducer.stdout(json.dumps({"type": "item.completed", "item": done}))
    search = {"id": "i2", "type": "web_search", "query": "python 3.14"}
    assert "● WebSearch(python 3.14)" in reducer.stdout(
        json.dumps({"type": "item.started", "item": search})
    )
    todos = {"id": "i3", "type": "todo_list", "items": [{"text": "a", "completed": True}]}
    assert "☑ a" in reducer.stdout(json.dumps({"type": "item.started", "item": todos}))
    assert reducer.stdout(json.dumps({"type": "item.updated", "item": todos})) == ""
    assert "[collab_tool_call]" in reducer.stdout(
        json.dumps({"type": "item.completed", "item": {"id": "i4", "type": "collab_tool_call"}})
    )


def test_an_error_then_a_failed_exit_without_turn_failed() -> None:
    _, reducer = reducer_for("codex")
    reducer.stdout('{"type":"error","message":"You\'ve hit your usage limit."}')
    assert reducer.knowledge.failure is None
    reducer.exited(1)
    assert reducer.knowledge.failure == "You've hit your usage limit."
    assert reducer.knowledge.failure_kind is FailureKind.API
    assert reducer.ending().startswith(f"{RED}✗ You've hit")


def test_stderr_tracing_is_dim_and_not_a_failure() -> None:
    _, reducer = reducer_for("codex")
    for line in (
        "Reading additional input from stdin...",
        "2026-12-02T00:29:14Z ERROR codex_api::endpoint::responses_websocket: failed to connect",
    ):
        assert reducer.stderr(line).startswith("\x1b[2m")
    assert reducer.knowledge.failure is None
    reducer.stderr("Not logged in")
    assert reducer.knowledge.failure_kind is FailureKind.AUTH


def test_a_model_providers_missing_key_is_auth_and_names_the_variable() -> None:
    """Codex CLI 0.171.0 with a provider whose env_key is unset: these lines, then exit 1."""
    _, reducer = reducer_for("codex")
    said = "Missing environment variable: `MOCK_API_KEY`."
    reducer.stdout(json.dumps({"type": "error", "message": said}))
    reducer.stdout(json.dumps({"type": "turn.failed", "error": {"message": said}}))
    reducer.exited(1)
    k = reducer.knowledge
    assert k.failure_kind is FailureKind.AUTH
    hint = codex.hint(k, 1)
    assert hint is not None and "MOCK_API_KEY" in hint and "~/.profile" in hint


@pytest.fixture
def fake_codex(tmp_path: Path) -> str:
    return str(fake_agents(tmp_path / "bin", "codex") / "codex")


@pytest.mark.parametrize(
    ("answer", "state"),
    [
        ("logged_in", AuthState.LOGGED_IN),
        ("not_logged_in", AuthState.NOT_LOGGED_IN),
        ("garbage", AuthState.UNKNOWN),
    ],
)
def test_auth_asks_codex_login_status(fake_codex: str, answer: str, state: AuthState) -> None:
    assert codex.auth(fake_codex, {"AIOS_FAKE_AUTH": answer}) is state


def test_auth_that_never_answers_is_unknown(fake_codex: str, tmp_path: Path) -> None:
    assert codex.auth(fake_codex, {"AIOS_FAKE_AUTH": "hang"}, timeout=0.5) is AuthState.UNKNOWN
    assert codex.auth(str(tmp_path / "missing"), {}) is AuthState.UNKNOWN


PROVIDER = """\
model = "gpt-5.5"
model_provider = "mock"

[model_providers.mock]
name = "Mock"
base_url = "http://127.0.0.1:9/v1"
env_key = "MOCK_API_KEY"
wire_api = "responses"
"""


def codex_home(tmp_path: Path, config: str) -> dict[str, str]:
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(config, encoding="utf-8")
    # codex login status would say "Not logged in" to all of these (checked with 0.171.0).
    return {"CODEX_HOME": str(home), "AIOS_FAKE_AUTH": "not_logged_in"}


def test_auth_follows_a_model_provider_of_its_own(fake_codex: str, tmp_path: Path) -> None:
    env = codex_home(tmp_path, PROVIDER)
    assert codex.auth(fake_codex, {**env, "MOCK_API_KEY": "sk-1"}) == Login(
        AuthState.LOGGED_IN, 'via model provider "mock" (key in MOCK_API_KEY)'
    )
    assert codex.auth(fake_codex, env) == Login(
        AuthState.NOT_LOGGED_IN,
        'model provider "mock" reads its key from MOCK_API_KEY: set it where AIOS starts'
        " (~/.profile), then restart AIOS",
    )
    keyless = PROVIDER.replace('env_key = "MOCK_API_KEY"\n', "")
    assert codex.auth(fake_codex, codex_home(tmp_path, keyless)) == Login(
        AuthState.LOGGED_IN, 'via model provider "mock"'
    )
    local = codex_home(tmp_path, 'model_provider = "ollama"\n')
    assert codex.auth(fake_codex, local) == Login(
        AuthState.LOGGED_IN, 'via model provider "ollama" (no key needed)'
    )
    undefined = codex_home(tmp_path, 'model_provider = "nowhere"\n')
    answer = codex.auth(fake_codex, undefined)
    assert isinstance(answer, Login) and answer.state is AuthState.UNKNOWN
    assert 'selects model provider "nowhere" but defines none' in str(answer.detail)


@pytest.mark.parametrize(
    "config",
    [
        "",
        'model_provider = "openai"\n',
        PROVIDER + "requires_openai_auth = true\n",
        "this is [not toml\n",
    ],
    ids=["no-provider", "openai", "requires-openai-auth", "broken-file"],
)
def test_auth_asks_codex_when_its_own_login_decides(
    fake_codex: str, tmp_path: Path, config: str
) -> None:
    env = codex_home(tmp_path, config)
    assert codex.auth(fake_codex, {**env, "MOCK_API_KEY": "sk-1"}) is AuthState.NOT_LOGGED_IN
    assert codex.auth(fake_codex, {**env, "AIOS_FAKE_AUTH": "logged_in"}) is AuthState.LOGGED_IN


def test_auth_reads_the_home_directory_without_codex_home(fake_codex: str, tmp_path: Path) -> None:
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(PROVIDER, encoding="utf-8")
    env = {"HOME": str(tmp_path), "MOCK_API_KEY": "sk-1", "AIOS_FAKE_AUTH": "not_logged_in"}
    answer = codex.auth(fake_codex, env)
    assert isinstance(answer, Login) and answer.state is AuthState.LOGGED_IN


def test_auth_with_key_variables_for_the_default_provider(fake_codex: str, tmp_path: Path) -> None:
    env = codex_home(tmp_path, "")
    # codex exec reads CODEX_API_KEY (its login status does not); OPENAI_API_KEY it ignores.
    assert codex.auth(fake_codex, {**env, "CODEX_API_KEY": "sk-1"}) == Login(
        AuthState.LOGGED_IN, "with CODEX_API_KEY"
    )
    answer = codex.auth(fake_codex, {**env, "OPENAI_API_KEY": "sk-1"})
    assert isinstance(answer, Login) and answer.state is AuthState.NOT_LOGGED_IN
    assert "codex login --with-api-key" in str(answer.detail)
    logged_in = {**env, "OPENAI_API_KEY": "sk-1", "AIOS_FAKE_AUTH": "logged_in"}
    assert codex.auth(fake_codex, logged_in) is AuthState.LOGGED_IN
