"""What the dashboard shows of an agent it understands, in a real Chromium (fake CLIs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import PageWatch, browser, sign_in, signed_in_page
from tests.fakeagents import Fakes

__all__ = ["browser"]

pytestmark = pytest.mark.daemon


@pytest.fixture
def fakes(home: Path, tmp_path: Path) -> Iterator[Fakes]:
    made = Fakes(home, tmp_path)
    made.configure(codex="codex-reconnect", gemini="gemini-not-logged-in")
    made.start()
    try:
        yield made
    finally:
        made.d.terminate()


@pytest.fixture
def page(browser: Any, fakes: Fakes) -> Iterator[tuple[Any, PageWatch]]:
    with signed_in_page(browser, fakes.d.port, fakes.d.info.token, 800, 15_000) as signed_in:
        yield signed_in


def test_the_transcript_and_what_the_run_knows(page: tuple[Any, PageWatch], fakes: Fakes) -> None:
    p, watch = page
    run = fakes.final(fakes.launch("claude", permission="read-only")["id"])
    p.goto(f"http://127.0.0.1:{fakes.d.port}/runs/{run['id']}")
    expect(p.locator("#output-title")).to_have_text("Transcript")
    output = p.locator("#output")
    expect(output).to_contain_text("● Write(hello.py)")
    expect(output).to_contain_text("● Bash(")
    assert '{"type"' not in output.inner_text()  # events rendered as text, not JSON
    assert output.locator("span").count() > 0  # styled (tool calls, folded results)
    details = p.locator("#run-details")
    for label, value in (
        ("Permission", "read-only"),
        ("Model", run["model"]),
        ("Session", run["session_id"]),
        ("Cost", "$"),
        ("Turns", str(run["num_turns"])),
    ):
        expect(details.locator(f"dt:text-is('{label}') + dd")).to_contain_text(value)
    expect(details.locator("dt:text-is('Tokens') + dd")).to_contain_text(" out)")
    expect(p.get_by_role("link", name="Raw events")).to_be_visible()
    assert watch.errors == [] and watch.dialogs == []


def test_a_failure_shows_its_reason_and_what_to_do(
    page: tuple[Any, PageWatch], fakes: Fakes
) -> None:
    p, watch = page
    run = fakes.final(fakes.launch("gemini")["id"])
    p.goto(f"http://127.0.0.1:{fakes.d.port}/runs/{run['id']}")
    expect(p.locator(".run-hint")).to_contain_text("GEMINI_API_KEY")
    expect(p.locator(".run-error")).to_contain_text(run["error"][:20])
    assert watch.errors == []


def test_the_overview_shows_activity_and_marks_attention_live(
    page: tuple[Any, PageWatch], fakes: Fakes
) -> None:
    p, watch = page
    p.get_by_label("Agent", exact=True).select_option("codex")
    p.get_by_label("Prompt").fill("write hello.py")
    p.get_by_label("Permission").select_option("full")
    p.get_by_role("button", name="Launch").click()
    row = p.locator("#runs tr.run").first
    expect(row.locator(".activity")).to_have_text("offline")
    expect(row.locator(".attention")).to_be_visible()
    run_id = (row.get_attribute("id") or "").removeprefix("run-")
    assert fakes.d.client.request("GET", f"/api/runs/{run_id}")["permission"] == "full"
    fakes.d.client.request("POST", f"/api/runs/{run_id}/stop")
    expect(row.locator(".state")).to_have_text("stopped")
    expect(row.locator(".attention")).to_have_count(0)
    assert watch.errors == []


@pytest.fixture
def two_way_fakes(home: Path, tmp_path: Path) -> Iterator[Fakes]:
    made = Fakes(home, tmp_path)
    made.configure('\n[agents.asker]\ncommand = ["claude", "-p", "--output-format", '
                   '"stream-json", "--verbose", "{permission}", "{resume}", "--", "{prompt}"]\n'
                   'format = "claude-stream-json"\napprovals = "ask"\n')  # fmt: skip
    made.start()
    try:
        yield made
    finally:
        made.d.terminate()


def test_continue_a_conversation_from_the_run_page(
    browser: Any, page: tuple[Any, PageWatch], fakes: Fakes
) -> None:
    p, watch = page
    first = fakes.final(fakes.launch("claude", "write hello.py")["id"])
    p.goto(f"http://127.0.0.1:{fakes.d.port}/runs/{first['id']}")
    p.get_by_label("Continue the conversation").fill("--now add tests")
    p.get_by_role("button", name="Continue").click()
    p.wait_for_url(re.compile(r"/runs/(?!" + first["id"] + ")[0-9a-f]{12}$"))
    new_id = p.url.rsplit("/", 1)[1]
    assert fakes.final(new_id)["parent"] == first["id"]
    turns = p.locator(".turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(0)).to_contain_text("write hello.py")
    expect(turns.nth(1)).to_contain_text("--now add tests")
    expect(p.locator("#continue")).to_be_visible()  # the box moved under the last turn
    assert watch.errors == []


def test_allow_a_request_from_the_run_page(browser: Any, two_way_fakes: Fakes) -> None:
    fakes = two_way_fakes
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    p.set_default_timeout(15_000)
    watch = PageWatch()
    watch.attach(p)
    try:
        sign_in(p, fakes.d.port, fakes.d.info.token)
        run = fakes.launch("asker", "ask: npm test")
        p.goto(f"http://127.0.0.1:{fakes.d.port}/runs/{run['id']}")
        p.wait_for_selector("#conn.connected")
        approval = p.locator(".approval")
        expect(approval).to_contain_text("asker wants to run Bash")
        expect(approval).to_contain_text("npm test")
        approval.get_by_role("button", name="Allow", exact=True).click()
        expect(p.locator("#output")).to_contain_text("ran: npm test")
        expect(p.locator(".approval")).to_have_count(0)
        expect(p.locator(".activity")).to_have_text("waiting")
        p.get_by_label("Message").fill("thanks")
        p.get_by_role("button", name="Send").click()
        expect(p.locator("#output")).to_contain_text("You said: thanks")
        p.get_by_role("button", name="Done").click()
        expect(p.locator("#run-details .state")).to_have_text("succeeded")
        expect(p.locator("#talk")).to_have_count(0)
        assert watch.errors == []
    finally:
        context.close()
