"""Aider's text output (stdout and stderr merged), from the synthetic cases; its login check from
the environment and the files in a temporary home."""

from __future__ import annotations

from pathlib import Path

import pytest

from aios.agents.formats import aider
from aios.agents.formats.base import AuthState
from aios.runs import Activity, FailureKind, Tokens
from aios.server.ansi import strip
from tests.replay import RED, YELLOW, reducer_for, replay


def test_a_successful_run_with_tokens_and_cost() -> None:
    run = replay("aider-success")
    k = run.knowledge
    assert k.model == "anthropic/claude-sonnet-4-20250514"
    # Summed over both model calls; the cost is the session figure, as aider printed it.
    assert k.tokens == Tokens(input=2300 + 3100, output=120 + 85, cached=4000 + 4000)
    assert k.cost_usd == 0.0034
    assert k.failure is None and run.hint is None
    plain = run.plain
    assert "● Edit(hello.py)" in plain
    assert "● Commit(1a2b3c4 feat: Add hello.py that prints a greeting)" in plain
    assert 'print("hello, world")' in plain  # the model's reply, as it came
    _, reducer = reducer_for("aider")
    assert reducer.stdout("Commit the changes when you are ready.") == (
        "Commit the changes when you are ready.\n"
    )
    assert plain.endswith("✓ done · 5,400 tokens sent (8,000 cache hits), 205 received · $0.0034\n")


def test_every_model_call_failing_behind_exit_0_is_a_failure() -> None:
    _, reducer = reducer_for("aider")
    for line in (
        "litellm.InternalServerError: InternalServerError: OpenAIException - boom",
        "The API provider's servers are down or overloaded.",
        "Retrying in 0.2 seconds...",
        "litellm.InternalServerError: InternalServerError: OpenAIException - boom",
        "The API provider's servers are down or overloaded.",
        "Retrying in 0.5 seconds...",
    ):
        reducer.stdout(line)
    k = reducer.knowledge
    assert (k.activity, k.activity_detail) == (
        Activity.RETRYING,
        "InternalServerError, retry 2 in 0.5 s",
    )
    reducer.stdout("litellm.InternalServerError: InternalServerError: OpenAIException - boom")
    reducer.stdout("The API provider's servers are down or overloaded.")
    assert k.failure is None  # nothing concluded before the exit
    reducer.exited(0)
    assert k.failure == (
        "The API provider's servers are down or overloaded. (litellm.InternalServerError)"
    )
    assert k.failure_kind is FailureKind.API
    hint = aider.hint(k, 0)
    assert hint and "try later" in hint
    assert reducer.ending().endswith(
        "✗ The API provider's servers are down or overloaded. (litellm.InternalServerError)"
        "\x1b[0m\n"
    )


def test_a_host_it_cannot_reach_is_offline_behind_exit_0() -> None:
    run = replay("aider-api-down")  # no such host: "Name or service not known"
    retrying = run.after(r"^Retrying in 0\.5 seconds")
    assert retrying.activity is Activity.OFFLINE
    assert retrying.activity_detail == "cannot reach the model provider, retry 2 in 0.5 s"
    assert aider.hint(retrying, None) == aider.HINTS[FailureKind.OFFLINE]  # live
    assert run.steps[-1][2].failure is None  # nothing concluded before the exit
    assert run.exit_code == 0
    k = run.knowledge
    assert k.failure is not None
    assert k.failure.startswith("litellm.InternalServerError: InternalServerError: Openrouter")
    assert k.failure_kind is FailureKind.OFFLINE
    assert run.hint == aider.HINTS[FailureKind.OFFLINE]
    assert f"{RED}litellm.InternalServerError" in run.text


def test_a_closed_port_is_offline_though_litellm_says_internal_server_error() -> None:
    run = replay("aider-refused")  # recorded: "… OpenAIException - Connection" / "error."
    retrying = run.after(r"^Retrying in 0\.2 seconds")
    assert (retrying.activity, retrying.activity_detail) == (
        Activity.OFFLINE,
        "cannot reach the model provider, retry 1 in 0.2 s",
    )
    # The rest of its wrapped words is not taken for the model's reply.
    rests = [k.activity for _, line, k in run.steps if line == "error."]
    assert len(rests) > 2 and set(rests[1:]) == {Activity.OFFLINE}
    k = run.knowledge
    assert k.failure == (
        "litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."
    )
    assert k.failure_kind is FailureKind.OFFLINE
    assert run.exit_code == 0 and run.hint == aider.HINTS[FailureKind.OFFLINE]


def test_stopped_while_retrying_keeps_the_failure_it_retried() -> None:
    _, reducer = reducer_for("aider")
    reducer.stdout("litellm.RateLimitError: RateLimitError: OpenAIException - slow down")
    reducer.stdout("The API provider has rate limited you. Try again later or check your quotas.")
    reducer.stdout("Retrying in 0.2 seconds...")
    reducer.exited(-15)
    k = reducer.knowledge
    assert k.failure_kind is FailureKind.API and k.failure is not None
    assert k.failure.startswith("The API provider has rate limited you.")
    assert aider.hint(k, -15) == aider.HINTS[FailureKind.API]


def test_a_call_that_works_after_a_retry_is_no_failure() -> None:
    _, reducer = reducer_for("aider")
    for line in (
        "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.",
        "Retrying in 0.2 seconds...",
        "Sure, here it is.",
        "Tokens: 1.5M sent, 2k received.",
    ):
        reducer.stdout(line)
    reducer.exited(0)
    assert reducer.knowledge.failure is None
    assert reducer.knowledge.tokens == Tokens(input=1_500_000, output=2000, cached=0)
    assert reducer.knowledge.activity is Activity.WORKING


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("litellm.AuthenticationError: AnthropicException - invalid x-api-key", FailureKind.AUTH),
        ("litellm.APIConnectionError: OpenAIException - Connection error.", FailureKind.OFFLINE),
        ("litellm.NotFoundError: OpenAIException - model gpt-9 does not exist", FailureKind.CONFIG),
        ("litellm.RateLimitError: RateLimitError: quota", FailureKind.API),
    ],
)
def test_the_litellm_error_class_names_the_kind(line: str, kind: FailureKind) -> None:
    _, reducer = reducer_for("aider")
    reducer.stdout(line)
    reducer.exited(0)
    assert reducer.knowledge.failure_kind is kind
    assert aider.hint(reducer.knowledge, 0)


def test_waiting_for_a_browser_login() -> None:
    run = replay("aider-openrouter-login")
    url = run.after("Please open this URL")
    assert url.activity is Activity.NEEDS_LOGIN
    waiting = run.knowledge
    assert waiting.activity is Activity.NEEDS_LOGIN  # the URL and later lines do not undo it
    assert (
        waiting.activity_detail == "waiting up to 5 min for a browser login it cannot finish here"
    )
    assert run.hint and "API key" in run.hint
    # One story, live and at the end: the login cannot finish here, a key is the way out.
    live = aider.hint(waiting, None)
    assert live and live.startswith("Stop it and give the agent an API key")
    assert live.endswith("aider cannot finish a browser login here.")
    assert run.hint.endswith("aider cannot finish a browser login here.")
    assert "https://openrouter.ai/auth?" in run.plain
    assert f"{YELLOW}Please open this URL" in run.text


def test_an_exit_code_without_words_is_no_success() -> None:
    for code, said in ((1, "✗ aider exited 1"), (-15, "✗ aider ended by signal 15")):
        _, reducer = reducer_for("aider")
        reducer.stdout("Aider v0.86.2")
        reducer.exited(code)
        assert strip(reducer.ending()) == said + "\n"
        assert reducer.knowledge.failure is None  # the supervisor has the exit code


def test_a_browser_login_that_fails() -> None:
    _, reducer = reducer_for("aider")
    reducer.stdout("No LLM model was specified and no API keys were provided.")
    reducer.stdout("OpenRouter authentication did not complete successfully.")
    reducer.exited(1)
    assert reducer.knowledge.failure_kind is FailureKind.AUTH


@pytest.mark.parametrize(
    ("text", "count"),
    [("120", 120), ("2.3k", 2300), ("12k", 12000), ("1.5M", 1_500_000), ("x", 0), ("", 0)],
)
def test_token_counts_as_aider_prints_them(text: str, count: int) -> None:
    assert aider.tokens_count(text) == count


def test_colour_codes_do_not_hide_what_a_line_says() -> None:
    _, reducer = reducer_for("aider")
    reducer.stdout("\x1b[32mMain model: gpt-4o with diff edit format\x1b[0m")
    reducer.stdout(
        "\x1b[2mTokens: 1k sent, 10 received. Cost: $0.01 message, $0.02 session.\x1b[0m"
    )
    assert reducer.knowledge.model == "gpt-4o"
    assert reducer.knowledge.cost_usd == 0.02


@pytest.mark.parametrize(
    ("env", "files", "state"),
    [
        ({"OPENROUTER_API_KEY": "k"}, (), AuthState.LOGGED_IN),
        ({"ANTHROPIC_API_KEY": "k"}, (".aider.conf.yml",), AuthState.LOGGED_IN),
        ({"AIDER_GROQ_API_KEY": "k"}, (), AuthState.LOGGED_IN),
        ({"OPENAI_API_KEY": ""}, (), AuthState.NOT_LOGGED_IN),
        ({}, (".aider.conf.yml",), AuthState.UNKNOWN),
        ({}, (".env",), AuthState.UNKNOWN),
        ({}, (), AuthState.NOT_LOGGED_IN),
    ],
)
def test_auth_from_key_variables_and_home_files(
    tmp_path: Path, env: dict[str, str], files: tuple[str, ...], state: AuthState
) -> None:
    for name in files:
        (tmp_path / name).write_text("model: sonnet\n")
    assert aider.auth("aider", {"HOME": str(tmp_path), **env}) is state


def test_auth_without_a_home_is_unknown() -> None:
    assert aider.auth("aider", {}) is AuthState.UNKNOWN
