"""The four agent CLIs, understood: the real daemon runs fake CLIs that replay recorded streams.

The fakes (tests/fakes) are put first on PATH and told what to replay through each preset's
``env`` in config.toml (the daemon hands an agent its config env, never its own AIOS_*).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fakeagents import Fakes
from tests.helpers import EventCollector, run_cli

pytestmark = pytest.mark.daemon


PRESET_ARGV = {
    ("claude", "read-only"): ["-p", "--output-format", "stream-json", "--verbose",
                              "--permission-mode", "plan", "--", "--version is broken"],
    ("claude", "edit"): ["-p", "--output-format", "stream-json", "--verbose",
                         "--permission-mode", "acceptEdits", "--", "--version is broken"],
    ("claude", "full"): ["-p", "--output-format", "stream-json", "--verbose",
                         "--dangerously-skip-permissions", "--", "--version is broken"],
    ("codex", "edit"): ["exec", "--json", "--sandbox", "workspace-write", "--",
                        "--version is broken"],
    ("codex", "full"): ["exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "--",
                        "--version is broken"],
    ("gemini", "edit"): ["--skip-trust", "-o", "stream-json", "--approval-mode", "auto_edit",
                         "--prompt=--version is broken"],
    ("gemini", "read-only"): ["--skip-trust", "-o", "stream-json", "--approval-mode", "plan",
                              "--prompt=--version is broken"],
    ("aider", "edit"): ["--no-analytics", "--no-check-update", "--yes-always",
                        "--no-suggest-shell-commands", "--message=--version is broken"],
}  # fmt: skip


def test_presets_build_the_argv_with_permission_flags_and_the_prompt_after_dashes(
    fakes: Fakes,
) -> None:
    fakes.configure()
    fakes.start()
    for (agent, permission), argv in PRESET_ARGV.items():
        run = fakes.launch(agent, "--version is broken", permission=permission)
        assert run["permission"] == permission
        final = fakes.final(run["id"])
        assert final["state"] == "succeeded", (agent, final)
        call = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == run["id"])
        assert (call["name"], call["argv"]) == (agent, argv)
        assert call["cwd"] == str(fakes.workdir)
    # The default permission is edit; a permission the agent has no modes for is refused.
    assert fakes.launch("claude")["permission"] == "edit"
    with pytest.raises(Exception, match="no permission modes"):
        fakes.launch("command", "true", permission="full")
    with pytest.raises(Exception, match="must be one of read-only, edit, full"):
        fakes.launch("claude", permission="root")


def test_cli_takes_a_prompt_that_starts_with_a_dash(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    result = run_cli(
        fakes.home, "run", "claude", "--permission", "read-only", "--wait", "--", "--version",
        cwd=str(fakes.workdir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    call = fakes.invocations()[-1]
    assert call["argv"][-2:] == ["--", "--version"]
    assert "--permission-mode" in call["argv"] and "plan" in call["argv"]
    assert "● Write(hello.py)" in result.stdout and '{"type"' not in result.stdout


def test_what_a_successful_run_knows_and_its_readable_transcript(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    claude = fakes.final(fakes.launch("claude")["id"])
    assert claude["state"] == "succeeded" and claude["exit_code"] == 0
    assert claude["session_id"] and claude["model"]
    assert claude["tokens"]["output"] > 0 and claude["cost_usd"] > 0
    assert claude["num_turns"] >= 1 and claude["denials"] == [] and claude["activity"] is None
    transcript = fakes.log(claude["id"])
    assert "● Write(hello.py)" in transcript and "● Bash(" in transcript
    assert '{"type"' not in transcript and "\x1b[" in transcript  # styled text, no JSON
    raw = fakes.d.client.request_bytes("GET", f"/api/runs/{claude['id']}/events").decode()
    assert all(json.loads(line)["type"] for line in raw.splitlines())
    assert '"type":"result"' in raw.replace(" ", "")

    codex = fakes.final(fakes.launch("codex")["id"])
    assert codex["state"] == "succeeded" and codex["session_id"]
    assert codex["tokens"]["input"] > 0 and codex["cost_usd"] is None  # codex reports no cost
    assert "$ " in fakes.log(codex["id"])

    gemini = fakes.final(fakes.launch("gemini")["id"])
    assert gemini["state"] == "succeeded" and gemini["tokens"]["output"] > 0

    aider = fakes.final(fakes.launch("aider")["id"])
    assert aider["state"] == "succeeded" and aider["cost_usd"] and aider["model"]
    # Totals across the history, as the overview shows them.
    page = fakes.d.client.request_bytes("GET", "/").decode()
    assert 'id="count-tokens"' in page and "$0" in page


def test_a_retry_shows_the_attempt_within_a_second_of_the_event(fakes: Fakes) -> None:
    fakes.configure(claude="claude-api-retry", speed="1")
    fakes.start()
    events = EventCollector(fakes.d.port, fakes.d.info.token)
    try:
        run = fakes.launch("claude")
        events.wait(lambda k, d: k == "run" and d["id"] == run["id"] and d["pid"] is not None)
        spawned = time.monotonic()
        _, data = events.wait(
            lambda k, d: (
                k == "run" and d["id"] == run["id"] and "3/10" in (d["activity_detail"] or "")
            ),
            timeout=15,
        )
        arrived = time.monotonic()
        assert data["activity"] == "offline"  # its retries got no answer at all
        assert data["activity_detail"].startswith("API retry 3/10")
        # The third retry line is written 0.51 + 1.16 s after the process starts (the recorded
        # pauses); the event must follow within a second of it.
        assert arrived - spawned <= 0.51 + 1.16 + 1.0
        fakes.d.client.request("POST", f"/api/runs/{run['id']}/stop")
        assert fakes.final(run["id"])["state"] == "stopped"
    finally:
        events.close()


def test_offline_needs_login_and_stalled_call_for_attention(fakes: Fakes) -> None:
    fakes.configure(
        '\n[agents.silent]\ncommand = ["claude", "-p", "--output-format", "stream-json",'
        ' "--verbose", "--", "{prompt}"]\nformat = "claude-stream-json"\nstall_after = 0.3\n'
        'env = { AIOS_FAKE_SCENARIO = "claude-silent" }\n',
        codex="codex-reconnect",
        aider="aider-openrouter-login",
    )
    fakes.start()
    events = EventCollector(fakes.d.port, fakes.d.info.token)
    try:
        runs = {name: fakes.launch(name)["id"] for name in ("codex", "aider", "silent")}
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < 3:
            _, data = events.wait(lambda k, d: k == "attention", timeout=20)
            seen[data["run"]] = data
        assert seen[runs["codex"]]["reason"] == "offline"
        assert seen[runs["aider"]]["reason"] == "needs_login"
        assert "cannot finish here" in seen[runs["aider"]]["message"]
        assert "API key" in seen[runs["aider"]]["message"]
        assert seen[runs["silent"]]["reason"] == "stalled"
        now = {rid: fakes.d.client.request("GET", f"/api/runs/{rid}") for rid in runs.values()}
        assert now[runs["codex"]]["activity"] == "offline"
        assert now[runs["codex"]]["hint"].startswith("Codex cannot reach its API")
        assert now[runs["aider"]]["hint"].startswith("Stop it and give the agent an API key")
        assert now[runs["silent"]]["hint"] is None
        assert now[runs["aider"]]["activity"] == "needs_login"
        assert now[runs["silent"]]["activity"] == "stalled"
        ps = run_cli(fakes.home, "ps")
        assert "offline" in ps.stdout and "needs_login" in ps.stdout and "stalled" in ps.stdout
        for rid in runs.values():
            fakes.d.client.request("POST", f"/api/runs/{rid}/stop")
            assert fakes.final(rid)["state"] == "stopped"
        # A stop keeps what the stream had learnt: why it was waiting, and what to do.
        codex = fakes.final(runs["codex"])
        assert (codex["error"], codex["error_kind"]) == ("stopped while offline", "offline")
        assert codex["hint"].startswith("Stopped while offline: Codex cannot reach")
        aider = fakes.final(runs["aider"])
        assert (aider["error_kind"], aider["hint"][:27]) == ("auth", "Stopped while waiting for a")
        silent = fakes.final(runs["silent"])
        assert (silent["error"], silent["error_kind"], silent["hint"]) == (None, None, None)
    finally:
        events.close()


def test_a_failure_behind_exit_0_ends_failed_with_a_hint(fakes: Fakes) -> None:
    fakes.configure(aider="aider-api-down", claude="claude-denied")
    fakes.start()
    events = EventCollector(fakes.d.port, fakes.d.info.token)
    try:
        aider = fakes.final(fakes.launch("aider")["id"])
        assert aider["state"] == "failed" and aider["exit_code"] == 0
        assert "litellm" in aider["error"] and aider["hint"]
        _, data = events.wait(lambda k, d: k == "attention" and d["run"] == aider["id"])
        assert data["reason"] == "hidden_failure"

        claude = fakes.final(fakes.launch("claude")["id"])
        assert claude["state"] == "succeeded" and claude["denials"]
        assert {"tool", "summary"} <= set(claude["denials"][0])
        _, data = events.wait(lambda k, d: k == "attention" and d["run"] == claude["id"])
        assert data["reason"] == "denials"
    finally:
        events.close()


@pytest.mark.parametrize(
    ("agent", "scenario", "code", "kind", "words"),
    [
        ("claude", "claude-not-logged-in", 1, "auth", "/login"),
        ("codex", "codex-untrusted-dir", 1, "untrusted_dir", "git"),
        ("gemini", "gemini-not-logged-in", 41, "auth", "GEMINI_API_KEY"),
    ],
)
def test_known_failures_get_their_reason_and_what_to_do(  # noqa: PLR0917
    fakes: Fakes, agent: str, scenario: str, code: int, kind: str, words: str
) -> None:
    fakes.configure(**{agent: scenario})
    fakes.start()
    run = fakes.final(fakes.launch(agent)["id"])
    assert (run["state"], run["exit_code"], run["error_kind"]) == ("failed", code, kind)
    assert words in run["hint"]
    assert run["error"]


def test_login_state_of_each_agent(fakes: Fakes) -> None:
    fakes.configure(claude_auth="logged_in")
    fakes.start()
    body = fakes.d.client.request("GET", "/api/agents")
    assert isinstance(body, dict)
    auth = {a["name"]: a["auth"] for a in body["agents"]}
    assert auth["claude"] == "logged_in" and auth["codex"] == "not_logged_in"
    assert auth["command"] is None
    listing = run_cli(fakes.home, "agents")
    assert "logged in" in listing.stdout and "not logged in" in listing.stdout
