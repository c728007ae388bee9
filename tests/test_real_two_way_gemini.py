"""Gemini CLI's two-way sessions through AIOS, against the pinned real CLI (``gemini --acp``) and
a scripted Gemini API on 127.0.0.1: approvals allowed and denied from the API and on the run
page in Chromium, a follow-up in the live session, Done, and continuing the ended run in its
session. No fake CLI takes part.

With permission ``edit`` gemini writes files without asking (``--approval-mode auto_edit``
holds in ACP mode) and asks before a shell command: each test asks with ``run_shell_command``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, signed_in_page
from tests.harness import wait_until, write_config
from tests.models.base import Fail, ScriptedModel, Text, Tool
from tests.models.gemini import GeminiModel
from tests.realagents import RealAgents, pin, reported_version
from tests.test_real_agents import real, repo

pytestmark = [pytest.mark.daemon, pytest.mark.real_agents]

__all__ = ["browser", "real", "repo"]  # the fixtures

LIVE = ("starting", "running")
GEMINI_MS = 60_000  # what gemini may take to start, ask or answer, on a loaded machine
ASK = '[agents.gemini]\napprovals = "ask"\n'
PROMPT = "Write allowed.txt with a shell command."
FOLLOW_UP = "Now write denied.txt the same way."
REFUSED = 'Tool \\"run_shell_command\\" was canceled by the user.'  # as the model is told (JSON)
# Where a run's exchange is kept when AIOS_RECORD_STREAMS names a folder (for the replays).
RECORD = os.environ.get("AIOS_RECORD_STREAMS")


@pytest.fixture(autouse=True)
def ask(home: Path) -> None:
    """The gemini preset with approvals = "ask", in the config the tier's daemon reads."""
    write_config(home, ASK)


def shell(command: str) -> Tool:
    return Tool("run_shell_command", {"command": command})


def asked(real: RealAgents, run_id: str, seen: set[str]) -> dict[str, Any]:
    """The next request the run asks the user (one it has not asked before)."""

    def pending() -> dict[str, Any] | None:
        run = real.now(run_id)
        assert run["state"] in LIVE, (run["error"], real.log(run_id)[-2000:])
        approval = run["pending_approval"]
        return approval if approval and approval["id"] not in seen else None

    approval: dict[str, Any] = wait_until(pending, 60, "gemini to ask")
    seen.add(approval["id"])
    assert real.now(run_id)["activity"] == "awaiting_approval"
    return approval


def decide(real: RealAgents, run_id: str, approval_id: str, decision: str) -> None:
    body = {"id": approval_id, "decision": decision}
    real.d.client.request("POST", f"/api/runs/{run_id}/approval", body)


def post(real: RealAgents, run_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return real.d.client.request("POST", f"/api/runs/{run_id}/{action}", body)


def conversation(model: ScriptedModel) -> list[str]:
    """The model's conversation calls (not its router's), as JSON text."""
    return [seen.text for seen in model.calls(":streamGenerateContent")]


def record(real: RealAgents, run_id: str, name: str) -> None:
    """Keep the run's raw ACP exchange (its stdout, one JSON-RPC message a line)."""
    if RECORD:
        for stream, suffix in (("events", "jsonl"), ("stderr", "stderr")):
            raw = real.d.client.request_bytes("GET", f"/api/runs/{run_id}/{stream}")
            Path(RECORD, f"{name}.{suffix}").write_bytes(raw)


def test_gemini_asks_obeys_allow_and_deny_takes_follow_ups_ends_on_done_and_continues(
    real: RealAgents, repo: Path
) -> None:
    assert reported_version("gemini") == pin("gemini").version
    model = GeminiModel(
        shell("echo allowed > allowed.txt"),
        Text("Ran it."),
        shell("echo denied > denied.txt"),
        Text("It was refused."),
    )
    with model:
        real.start(gemini=model)
        agents = real.d.client.request("GET", "/api/agents")["agents"]
        listed = next(a for a in agents if a["name"] == "gemini")
        assert listed["approvals"] == "ask" and "--acp" in listed["can_ask"]
        run_id = real.launch("gemini", PROMPT, repo)["id"]
        seen: set[str] = set()
        approval = asked(real, run_id, seen)
        assert (approval["tool"], approval["summary"]) == (
            "run_shell_command",
            "echo allowed > allowed.txt",
        )
        assert approval["always"] is True  # gemini offers "Allow for this session"
        assert not (repo / "allowed.txt").exists()
        decide(real, run_id, approval["id"], "allow")
        first = real.waiting(run_id)
        assert (repo / "allowed.txt").read_text() == "allowed\n"
        assert first["session_id"] and first["num_turns"] == 1

        # A follow-up goes to the live session; its request is denied, and the model hears so.
        post(real, run_id, "message", {"prompt": FOLLOW_UP})
        approval = asked(real, run_id, seen)
        assert approval["summary"] == "echo denied > denied.txt"
        decide(real, run_id, approval["id"], "deny")
        real.waiting(run_id)
        assert not (repo / "denied.txt").exists()
        calls = conversation(model)
        assert FOLLOW_UP in calls[-2] and REFUSED in calls[-1]
        log = real.log(run_id)
        assert "run_shell_command(echo allowed > allowed.txt)" in log
        assert "denied: not run" in log and "It was refused." in log

        # Done: stdin closes, gemini ends, and the run succeeded.
        post(real, run_id, "done")
        run = real.final(run_id)
        assert run["state"] == "succeeded", (run["error"], real.log(run_id)[-2000:])
        assert run["pending_approval"] is None and run["activity"] is None
        assert run["num_turns"] == 2
        assert run["tokens"] == {
            "input": sum(u.input for u in model.script.usages),
            "output": sum(u.output for u in model.script.usages),
            "cached": 0,
        }
        assert run["model"] and run["model"] != "auto"
        record(real, run_id, "gemini-acp-allow-deny")

        # Continuing the ended run loads its session: the model hears the whole conversation.
        # Gemini CLI 0.61.0 would lose the session loaded in the minute it was last written:
        # AIOS holds the handshake until the next one (when the minute has not turned already).
        model.then(Text("Goodbye."))
        again = real.continue_(run_id, "Say goodbye.")["id"]
        real.waiting(again)
        ended = datetime.fromisoformat(run["ended_at"]).replace(second=0, microsecond=0)
        if datetime.fromisoformat(real.now(again)["created_at"]) < ended + timedelta(minutes=1):
            assert "the session opens at" in real.log(again)
        assert model.script.overrun == 0
        assert all(t in conversation(model)[-1] for t in (PROMPT, "Ran it.", "Say goodbye."))
        post(real, again, "done")
        continued = real.final(again)
        assert continued["state"] == "succeeded", (continued["error"], real.log(again)[-2000:])
        assert continued["session_id"] == run["session_id"]
        assert "Goodbye." in real.log(again) and "Ran it." not in real.log(again)
        record(real, again, "gemini-acp-resumed")


def test_allow_and_deny_on_the_run_page(real: RealAgents, repo: Path, browser: Any) -> None:
    from playwright.sync_api import expect

    model = GeminiModel(
        shell("echo clicked > clicked.txt"),
        Text("Ran it."),
        shell("echo refused > refused.txt"),
        Text("It was refused."),
    )
    with model:
        real.start(gemini=model)
        run_id = real.launch("gemini", "Write clicked.txt.", repo)["id"]
        with signed_in_page(browser, real.d.port, real.d.info.token, timeout_ms=60_000) as (
            page,
            watch,
        ):
            page.goto(f"http://127.0.0.1:{real.d.port}/runs/{run_id}")
            page.wait_for_selector("#conn.connected")
            approval = page.locator(".approval")
            expect(approval).to_contain_text("echo clicked > clicked.txt", timeout=GEMINI_MS)
            expect(approval.get_by_role("button", name="Always allow")).to_be_visible()
            approval.get_by_role("button", name="Allow", exact=True).click()
            expect(page.locator(".activity")).to_have_text("waiting", timeout=GEMINI_MS)
            assert (repo / "clicked.txt").read_text() == "clicked\n"

            page.get_by_label("Message").fill("Now write refused.txt.")
            page.get_by_role("button", name="Send").click()
            expect(approval).to_contain_text("echo refused > refused.txt", timeout=GEMINI_MS)
            approval.get_by_role("button", name="Deny").click()
            expect(page.locator("#output")).to_contain_text("It was refused.", timeout=GEMINI_MS)
            assert not (repo / "refused.txt").exists()
            assert REFUSED in conversation(model)[-1]
            page.get_by_role("button", name="Done").click()
            expect(page.locator("#run-details .state")).to_have_text("succeeded", timeout=GEMINI_MS)
            assert watch.errors == []


def test_a_stop_cancels_the_pending_request_and_the_turn(real: RealAgents, repo: Path) -> None:
    model = GeminiModel(shell("echo never > never.txt"), Text("Stopped."))
    with model:
        real.start(gemini=model)
        run_id = real.launch("gemini", "Write never.txt.", repo)["id"]
        asked(real, run_id, set())
        post(real, run_id, "stop")
        run = real.final(run_id)
        assert run["state"] == "stopped" and run["pending_approval"] is None
        assert not (repo / "never.txt").exists()


def test_a_refused_key_fails_the_session_as_auth_and_ends_it(real: RealAgents, repo: Path) -> None:
    """Nothing more can be said in a session whose key is refused: AIOS closes it, and the run
    fails with the one-way mode's kind and hint."""
    model = GeminiModel(*[Fail(401, "API key not valid. Please pass a valid API key.")] * 8)
    with model:
        real.start(gemini=model)
        run = real.final(real.launch("gemini", PROMPT, repo)["id"], timeout=60)
        assert (run["state"], run["error_kind"]) == ("failed", "auth"), real.log(run["id"])
        assert "API key not valid" in run["error"] and run["hint"]
        assert run["num_turns"] is None and run["tokens"] is None  # no turn was answered
        record(real, run["id"], "gemini-acp-refused-key")


def test_without_a_key_the_session_does_not_open_and_the_run_fails_as_auth(
    real: RealAgents, repo: Path
) -> None:
    with GeminiModel(Text("never asked")) as model:
        env = real.environment(gemini=model)
        del env["GEMINI_API_KEY"]
        real.start_with(env)
        run = real.final(real.launch("gemini", PROMPT, repo)["id"], timeout=60)
        assert (run["state"], run["error_kind"]) == ("failed", "auth"), real.log(run["id"])
        assert "API key is missing" in run["error"] and run["hint"]
        assert run["session_id"] is None and not model.seen
        record(real, run["id"], "gemini-acp-no-key")
