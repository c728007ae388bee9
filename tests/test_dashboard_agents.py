"""What the dashboard shows of an agent it understands, in a real Chromium (fake CLIs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import PageWatch, browser
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
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch()
    watch.attach(page)
    page.goto(f"http://127.0.0.1:{fakes.d.port}/login?token={fakes.d.info.token}")
    page.wait_for_selector("#conn.connected")
    try:
        yield page, watch
    finally:
        context.close()


def test_the_transcript_and_what_the_run_knows(page: tuple[Any, PageWatch], fakes: Fakes) -> None:
    p, watch = page
    run = fakes.final(fakes.launch("claude", permission="read-only")["id"])
    p.goto(f"http://127.0.0.1:{fakes.d.port}/runs/{run['id']}")
    expect(p.locator("#output-title")).to_have_text("Transcript")
    output = p.locator("#output")
    expect(output).to_contain_text("⏺ Write(hello.py)")
    expect(output).to_contain_text("⏺ Bash(")
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
