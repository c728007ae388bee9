"""The real-agents tier, two-way: Codex CLI at its pinned version through ``codex app-server``
with ``approvals = "ask"``, run by a real daemon against the scripted OpenAI Responses server
(tests/models/openai_responses.py). No fake CLI takes part.

Codex asks for every command it does not know to be a harmless read and for every patch
(``approvalPolicy`` "untrusted"); an allowed command runs, an allowed patch is written, a
declined one is not and the model is told so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, signed_in_page
from tests.harness import wait_until, write_config
from tests.models.base import Fail, ScriptedModel, Text, Tool
from tests.models.openai_responses import ResponsesModel, add_file
from tests.realagents import RealAgents, pin, reported_version
from tests.test_real_agents import real, repo

pytestmark = [pytest.mark.daemon, pytest.mark.real_agents]
__all__ = ["browser", "real", "repo"]  # the fixtures

PROMPT = "Run a command, then write a file."
FOLLOW_UP = "Now say goodbye."
ASK = '[agents.codex]\napprovals = "ask"\n'
# What codex 0.171.0 tells the model of a declined patch.
REFUSED = "rejected by user"


@pytest.fixture(autouse=True)
def ask(home: Path) -> None:
    """The codex preset with approvals = "ask", in the config the tier's daemon reads."""
    write_config(home, ASK)


def asking_model() -> ResponsesModel:
    """A command (allowed, it runs), a patch (denied, not written), and a closing word."""
    return ResponsesModel(
        Tool("exec_command", {"cmd": "echo allowed > ran.txt"}),
        Tool("apply_patch", add_file("denied.txt", "never written")),
        Text("One ran, one was refused."),
    )


def run_now(real: RealAgents, run_id: str) -> dict[str, Any]:
    run = real.d.client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def asked(real: RealAgents, run_id: str, tool: str) -> dict[str, Any]:
    """The request the run waits on, once it is one for ``tool``."""

    def pending() -> dict[str, Any] | None:
        run = run_now(real, run_id)
        assert run["state"] not in ("succeeded", "failed", "stopped"), real.log(run_id)[-3000:]
        approval = run["pending_approval"]
        return approval if approval and approval["tool"] == tool else None

    approval: dict[str, Any] = wait_until(pending, 60, f"codex to ask for {tool}")
    assert run_now(real, run_id)["activity"] == "awaiting_approval"
    return approval


def decide(real: RealAgents, run_id: str, approval: dict[str, Any], decision: str) -> None:
    body = {"id": approval["id"], "decision": decision}
    real.d.client.request("POST", f"/api/runs/{run_id}/approval", body)


def waiting(real: RealAgents, run_id: str) -> dict[str, Any]:
    """The run once its turn is over and it waits for the user's next message."""

    def between_turns() -> dict[str, Any] | None:
        run = run_now(real, run_id)
        assert run["state"] in ("starting", "running"), (run["state"], real.log(run_id)[-3000:])
        return run if run["activity"] == "waiting" else None

    run: dict[str, Any] = wait_until(between_turns, 60, "the turn to end")
    return run


def done(real: RealAgents, run_id: str) -> dict[str, Any]:
    real.d.client.request("POST", f"/api/runs/{run_id}/done")
    run = real.final(run_id)
    assert run["state"] == "succeeded", (run["error"], run["hint"], real.log(run_id)[-3000:])
    return run


def sent_after(model: ScriptedModel, call: int) -> str:
    """The model's ``call``-th request (from 0), as text."""
    return model.seen[call].text


def thread_of(real: RealAgents, run_id: str) -> str:
    """The thread id app-server gave in its answer to thread/start (or thread/resume)."""
    for event in real.events(run_id):
        thread = event.get("result", {}).get("thread") if isinstance(event, dict) else None
        if isinstance(thread, dict):
            return str(thread["id"])
    raise AssertionError("no thread in the events")


def test_codex_asks_and_obeys_an_allow_and_a_deny_from_the_api_then_follows_up_and_is_done(
    real: RealAgents, repo: Path
) -> None:
    assert reported_version("codex") == pin("codex").version
    model = asking_model()
    with model:
        real.start(codex=model)
        listed = real.d.client.request("GET", "/api/agents")
        codex = next(a for a in listed["agents"] if a["name"] == "codex")
        assert codex["approvals"] == "ask" and "app-server" in codex["can_ask"]
        run = real.launch("codex", PROMPT, repo)

        command = asked(real, run["id"], "shell")
        assert command["summary"] == "echo allowed > ran.txt"
        assert command["always"] is False  # codex 0.171.0 offers no acceptForSession for it
        decide(real, run["id"], command, "allow")
        patch = asked(real, run["id"], "apply_patch")
        assert patch["summary"] == "denied.txt" and patch["always"] is True
        decide(real, run["id"], patch, "deny")
        between = waiting(real, run["id"])
        assert (repo / "ran.txt").read_text() == "allowed\n"
        assert not (repo / "denied.txt").exists()
        assert REFUSED in sent_after(model, 2)  # the model was told of the refusal
        assert between["num_turns"] == 1 and between["pending_approval"] is None
        log = real.log(run["id"])
        assert "$ echo allowed > ran.txt" in log and "declined: you declined it" in log

        # A follow-up goes to the live session: a new turn of the same thread.
        model.then(Text("Goodbye."))
        real.d.client.request("POST", f"/api/runs/{run['id']}/message", {"prompt": FOLLOW_UP})
        wait_until(lambda: len(model.seen) == 4, 60, "the follow-up to reach the model")
        assert all(t in sent_after(model, 3) for t in (PROMPT, REFUSED, FOLLOW_UP))
        assert waiting(real, run["id"])["num_turns"] == 2

        ended = done(real, run["id"])
        assert ended["session_id"] == thread_of(real, run["id"])
        assert ended["model"] == "gpt-5.5" and ended["num_turns"] == 2
        usages = model.script.usages
        assert ended["tokens"] == {
            "input": sum(u.input for u in usages),
            "output": sum(u.output for u in usages),
            "cached": 0,
        }
        assert [d["tool"] for d in ended["denials"]] == ["apply_patch"]
        assert "Goodbye." in real.log(run["id"])
        assert model.script.overrun == 0


def test_always_allows_a_patch_and_later_changes_to_the_same_file(
    real: RealAgents, repo: Path
) -> None:
    update = "*** Begin Patch\n*** Update File: notes.txt\n@@\n-first\n+second\n*** End Patch\n"
    model = ResponsesModel(
        Tool("apply_patch", add_file("notes.txt", "first")),
        Tool("apply_patch", update),
        Text("Wrote it twice."),
    )
    with model:
        real.start(codex=model)
        run = real.launch("codex", PROMPT, repo)
        patch = asked(real, run["id"], "apply_patch")
        assert patch["always"] is True
        decide(real, run["id"], patch, "always")
        between = waiting(real, run["id"])  # the second patch was not asked for
        assert (repo / "notes.txt").read_text() == "second\n"
        assert between["pending_approval"] is None
        raw = json.dumps(real.events(run["id"]))
        assert raw.count("item/fileChange/requestApproval") == 1
        done(real, run["id"])


def test_a_continued_two_way_codex_run_resumes_its_thread(real: RealAgents, repo: Path) -> None:
    model = ResponsesModel(Text("Hello."))
    with model:
        real.start(codex=model)
        first = real.launch("codex", PROMPT, repo)
        waiting(real, first["id"])
        first = done(real, first["id"])

        model.then(Text("Resumed."))
        again = real.continue_(first["id"], FOLLOW_UP)
        waiting(real, again["id"])
        # The whole earlier conversation went to the model: the thread was resumed, not begun.
        assert all(t in sent_after(model, 1) for t in (PROMPT, "Hello.", FOLLOW_UP))
        resumed = done(real, again["id"])
        assert resumed["session_id"] == first["session_id"] == thread_of(real, again["id"])
        # Only this run's tokens, not the thread's before it.
        latest = model.script.usages[-1]
        assert resumed["tokens"] == {"input": latest.input, "output": latest.output, "cached": 0}
        assert resumed["num_turns"] == 1


def test_a_continued_run_whose_thread_codex_lost_fails_as_gone_and_ends(
    real: RealAgents, repo: Path
) -> None:
    """thread/resume refused: there is no session to hold, so AIOS closes its input."""
    with ResponsesModel(Text("Hello.")) as model:
        real.start(codex=model)
        first = real.launch("codex", PROMPT, repo)
        waiting(real, first["id"])
        first = done(real, first["id"])
        shutil.rmtree(real.user_home / ".codex" / "sessions")
        again = real.final(real.continue_(first["id"], FOLLOW_UP)["id"], 60)
        assert again["state"] == "failed", real.log(again["id"])[-3000:]
        assert again["error_kind"] == "session_gone" and "no rollout found" in again["error"]
        assert again["hint"] and "start afresh" in again["hint"]
        assert len(model.seen) == 1


def test_a_refused_key_fails_the_turn_as_auth_and_done_ends_the_run_failed(
    real: RealAgents, repo: Path
) -> None:
    with ResponsesModel(*[Fail(401, "Incorrect API key provided: sk-aios-test.")] * 4) as model:
        real.start(codex=model)
        run = real.launch("codex", PROMPT, repo)
        between = waiting(real, run["id"])  # the session lives on: the user may try again
        assert between["num_turns"] is None
        ended = real.final(real.d.client.request("POST", f"/api/runs/{run['id']}/done")["id"])
        assert ended["state"] == "failed" and ended["error_kind"] == "auth", ended["error"]
        assert ended["hint"] and "401" in ended["error"]


def test_offline_codex_says_so_while_live_and_a_stop_keeps_why(
    real: RealAgents, repo: Path
) -> None:
    model = ResponsesModel()
    env = real.environment(codex=model)
    model.close()  # its key is given, and nothing listens on its port any more
    real.start_with(env)
    run = real.launch("codex", PROMPT, repo)

    def offline() -> dict[str, Any] | None:
        now = run_now(real, run["id"])
        return now if now["activity"] == "offline" else None

    live = wait_until(offline, 60, "codex to wait for the network")
    assert live["hint"] and "cannot reach its API" in live["hint"]
    real.d.client.request("POST", f"/api/runs/{run['id']}/stop")
    stopped = real.final(run["id"])
    assert stopped["state"] == "stopped" and stopped["error_kind"] == "offline"
    assert stopped["hint"] and "cannot reach its API" in stopped["hint"]


def test_a_stop_interrupts_the_turn_and_ends_the_run(real: RealAgents, repo: Path) -> None:
    with asking_model() as model:
        real.start(codex=model)
        run = real.launch("codex", PROMPT, repo)
        asked(real, run["id"], "shell")
        real.d.client.request("POST", f"/api/runs/{run['id']}/stop")
        stopped = real.final(run["id"])
        assert stopped["state"] == "stopped" and stopped["pending_approval"] is None
        assert not (repo / "ran.txt").exists()


def test_allow_and_deny_codex_on_the_run_page(browser: Any, real: RealAgents, repo: Path) -> None:
    from playwright.sync_api import expect

    model = asking_model()
    with model:
        real.start(codex=model)
        run = real.launch("codex", PROMPT, repo)
        with signed_in_page(browser, real.d.port, real.d.info.token) as (page, watch):
            page.goto(f"http://127.0.0.1:{real.d.port}/runs/{run['id']}")
            approval = page.locator(".approval")
            expect(approval).to_contain_text("codex wants to run shell", timeout=60_000)
            expect(approval).to_contain_text("echo allowed > ran.txt")
            expect(approval.get_by_role("button", name="Always allow")).to_have_count(0)
            approval.get_by_role("button", name="Allow").click()
            expect(approval).to_contain_text("codex wants to run apply_patch", timeout=60_000)
            expect(approval).to_contain_text("denied.txt")
            approval.get_by_role("button", name="Deny").click()
            expect(page.locator(".activity")).to_have_text("waiting", timeout=60_000)
            expect(page.locator("#output")).to_contain_text("One ran, one was refused.")
            assert (repo / "ran.txt").read_text() == "allowed\n"
            assert not (repo / "denied.txt").exists()
            assert REFUSED in sent_after(model, 2)
            page.get_by_role("button", name="Done").click()
            expect(page.locator("#run-details .state")).to_have_text("succeeded")
            assert watch.errors == []
        raw = real.events(run["id"])
        assert any(json.dumps(e).find("item/fileChange/requestApproval") >= 0 for e in raw)
