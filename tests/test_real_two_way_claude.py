"""The real-agents tier, two-way: Claude Code at its pinned version in its stream-json session
(``--input-format stream-json --permission-prompt-tool stdio``) with ``approvals = "ask"``, run
by a real daemon against the scripted Anthropic Messages server (tests/models/anthropic.py). No
fake CLI takes part.

With permission ``edit`` (``acceptEdits``) claude writes files unasked but asks for a command
such as ``python3 -c …``: an allowed one runs, a denied one does not and the model gets the
denial as an ``is_error`` tool result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, signed_in_page
from tests.harness import wait_until, write_config
from tests.models.anthropic import AnthropicModel
from tests.models.base import Text, Tool
from tests.realagents import RealAgents, pin, reported_version
from tests.test_real_agents import real, repo

pytestmark = [pytest.mark.daemon, pytest.mark.real_agents]
__all__ = ["browser", "real", "repo"]  # the fixtures

PROMPT = "Run two commands."
FOLLOW_UP = "Now say goodbye."
ASK = '[agents.claude]\napprovals = "ask"\n'
ALLOWED = "python3 -c \"open('ran.txt', 'w').write('allowed')\""
DENIED = "python3 -c \"open('denied.txt', 'w').write('never')\""
APPENDS = "python3 -c \"open('ran.txt', 'a').write('ran ')\""
WHY = "Not this one."


@pytest.fixture(autouse=True)
def ask(home: Path) -> None:
    """The claude preset with approvals = "ask", in the config the tier's daemon reads."""
    write_config(home, ASK)


def asking_model() -> AnthropicModel:
    """A command (allowed: it runs), another (denied: it does not), and a closing word."""
    return AnthropicModel(
        Tool("Bash", {"command": ALLOWED, "description": "Write ran.txt"}),
        Tool("Bash", {"command": DENIED, "description": "Write denied.txt"}),
        Text("One ran, one was refused."),
    )


def asked(real: RealAgents, run_id: str, command: str, answered: str = "") -> dict[str, Any]:
    """The request the run waits on, once it is the one for ``command`` (and not the request
    ``answered`` already)."""

    def pending() -> dict[str, Any] | None:
        run = real.now(run_id)
        assert run["state"] not in ("succeeded", "failed", "stopped"), real.log(run_id)[-3000:]
        approval = run["pending_approval"]
        wanted = approval and approval["summary"] == command and approval["id"] != answered
        return approval if wanted else None

    approval: dict[str, Any] = wait_until(pending, 90, f"claude to ask for {command}")
    assert approval["tool"] == "Bash"
    assert real.now(run_id)["activity"] == "awaiting_approval"
    return approval


def decide(real: RealAgents, run_id: str, approval: dict[str, Any], decision: str) -> None:
    body = {"id": approval["id"], "decision": decision}
    real.d.client.request("POST", f"/api/runs/{run_id}/approval", body)


def refusal_sent(model: AnthropicModel) -> bool:
    """Whether the model's third call carried the denial as an error result."""
    body = model.seen[2].text
    return '"is_error": true' in body and WHY in body


def test_claude_asks_and_obeys_an_allow_and_a_deny_from_the_api_then_follows_up_and_is_done(
    real: RealAgents, repo: Path
) -> None:
    assert reported_version("claude") == pin("claude").version
    model = asking_model()
    with model:
        real.start(claude=model)
        listed = real.d.client.request("GET", "/api/agents")
        claude = next(a for a in listed["agents"] if a["name"] == "claude")
        assert claude["approvals"] == "ask" and claude["can_ask"]
        run = real.launch("claude", PROMPT, repo)

        allow = asked(real, run["id"], ALLOWED)
        real.d.client.request(
            "POST", f"/api/runs/{run['id']}/approval", {"id": allow["id"], "decision": "allow"}
        )
        deny = asked(real, run["id"], DENIED)
        body = {"id": deny["id"], "decision": "deny", "message": WHY}
        real.d.client.request("POST", f"/api/runs/{run['id']}/approval", body)
        between = real.waiting(run["id"])
        assert (repo / "ran.txt").read_text() == "allowed"
        assert not (repo / "denied.txt").exists()
        assert refusal_sent(model)
        assert between["pending_approval"] is None and between["session_id"]
        assert "One ran, one was refused." in real.log(run["id"])

        # A follow-up goes to the live session: the model gets the whole conversation.
        model.then(Text("Goodbye."))
        real.d.client.request("POST", f"/api/runs/{run['id']}/message", {"prompt": FOLLOW_UP})
        wait_until(lambda: len(model.seen) == 4, 90, "the follow-up to reach the model")
        assert all(t in model.seen[3].text for t in (PROMPT, WHY, FOLLOW_UP))
        real.waiting(run["id"])

        real.d.client.request("POST", f"/api/runs/{run['id']}/done")
        ended = real.final(run["id"], 90)
        assert ended["state"] == "succeeded", (ended["error"], real.log(run["id"])[-3000:])
        assert ended["session_id"] == between["session_id"]
        assert ended["cost_usd"] and ended["cost_usd"] > 0
        assert "Goodbye." in real.log(run["id"])
        assert model.script.overrun == 0


def test_allow_and_deny_claude_on_the_run_page(browser: Any, real: RealAgents, repo: Path) -> None:
    from playwright.sync_api import expect

    model = asking_model()
    with model:
        real.start(claude=model)
        run = real.launch("claude", PROMPT, repo)
        with signed_in_page(browser, real.d.port, real.d.info.token) as (page, watch):
            page.goto(f"http://127.0.0.1:{real.d.port}/runs/{run['id']}")
            approval = page.locator(".approval")
            expect(approval).to_contain_text("claude wants to run Bash", timeout=90_000)
            expect(approval).to_contain_text("ran.txt")
            expect(approval.get_by_role("button", name="Always allow")).to_be_visible()
            approval.get_by_role("button", name="Allow", exact=True).click()
            expect(approval).to_contain_text("denied.txt", timeout=90_000)
            approval.get_by_role("button", name="Deny").click()
            try:
                expect(page.locator(".activity")).to_have_text("waiting", timeout=90_000)
            except AssertionError as exc:  # seen once in ten runs: say whose view was behind
                now = real.now(run["id"])
                facts = {k: now[k] for k in ("state", "activity", "pending_approval", "num_turns")}
                raise AssertionError(
                    f"{exc}\nthe API says {facts}; requests the model saw: {len(model.seen)}\n"
                    f"{real.log(run['id'])[-3000:]}"
                ) from None
            expect(page.locator("#output")).to_contain_text("One ran, one was refused.")
            assert (repo / "ran.txt").read_text() == "allowed"
            assert not (repo / "denied.txt").exists()
            assert '"is_error": true' in model.seen[2].text
            page.get_by_role("button", name="Done").click()
            expect(page.locator("#run-details .state")).to_have_text("succeeded", timeout=90_000)
            assert watch.errors == []


def settings_files(*roots: Path) -> list[Path]:
    """Claude Code's settings files (``.claude/settings.json``, ``settings.local.json``) under
    ``roots``: an "always" must not write one (with the destination 2.1.332 suggests,
    ``localSettings``, it writes the repository's ``.claude/settings.local.json``)."""
    return [p for root in roots for p in root.rglob("settings*.json") if p.parent.name == ".claude"]


def twice() -> AnthropicModel:
    """The same command twice, and a closing word."""
    return AnthropicModel(
        Tool("Bash", {"command": APPENDS, "description": "Append to ran.txt"}),
        Tool("Bash", {"command": APPENDS, "description": "Append to ran.txt again"}),
        Text("Ran it twice."),
    )


def test_allowed_once_claude_asks_again_for_the_same_command(real: RealAgents, repo: Path) -> None:
    with twice() as model:
        real.start(claude=model)
        run = real.launch("claude", PROMPT, repo)
        first = asked(real, run["id"], APPENDS)
        decide(real, run["id"], first, "allow")
        again = asked(real, run["id"], APPENDS, answered=first["id"])
        decide(real, run["id"], again, "allow")
        real.waiting(run["id"])
        assert (repo / "ran.txt").read_text() == "ran ran "
        assert model.script.overrun == 0


def test_always_allows_a_command_for_the_rest_of_the_session_and_writes_no_settings(
    real: RealAgents, repo: Path
) -> None:
    with twice() as model:
        real.start(claude=model)
        run = real.launch("claude", PROMPT, repo)
        approval = asked(real, run["id"], APPENDS)
        assert approval["always"] is True  # 2.1.332 suggests a rule for the command
        decide(real, run["id"], approval, "always")
        between = real.waiting(run["id"])  # the second call was not asked for
        assert between["pending_approval"] is None
        assert (repo / "ran.txt").read_text() == "ran ran "
        requests = [e for e in real.events(run["id"]) if e.get("type") == "control_request"]
        assert len(requests) == 1
        suggested = requests[0]["request"]["permission_suggestions"]
        assert [s["destination"] for s in suggested] == ["localSettings"]  # sent back as session
        assert settings_files(repo, real.user_home) == []
        assert "Ran it twice." in real.log(run["id"])
        real.d.client.request("POST", f"/api/runs/{run['id']}/done")
        ended = real.final(run["id"], 90)
        assert ended["state"] == "succeeded", (ended["error"], real.log(run["id"])[-3000:])
        assert model.script.overrun == 0
        assert settings_files(repo, real.user_home) == []
        # Nor in the CLI's own state file, where older versions kept a project's allowed tools.
        assert "ran.txt" not in (real.user_home / ".claude.json").read_text()
