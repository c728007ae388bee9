"""The dashboard's rough edges, in a real headless Chromium at a laptop's and a phone's size.

Each test runs at 1280x800 and at 390x844 against a real daemon with real agents.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from aios.credentials import SESSION_LIFETIME, Secrets
from tests.browser import PageWatch, browser
from tests.browser import sign_in as browser_sign_in
from tests.helpers import (
    DaemonProcess,
    agent_script,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

__all__ = ["browser"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.daemon

VIEWPORTS = {"laptop": (1280, 800), "phone": (390, 844)}

LINES = "import sys\nfor i in range(int(sys.argv[1])):\n    print(f'line {i}')\n"
# Colours of all three kinds, then a progress line redrawn in place; it waits half-way for the
# file named by its prompt, so the page can open while the line is still being redrawn.
PROGRESS = r"""
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
print("\x1b[38;5;208morange\x1b[0m \x1b[38;2;18;52;86mtrue\x1b[0m "
      "\x1b[1;48;2;200;100;50mbg\x1b[0m \x1b[7minverse\x1b[0m", flush=True)
for i in range(0, 40, 10):
    print(f"\rprogress {i}%", end="", flush=True)
    time.sleep(0.05)
while not go.exists():
    time.sleep(0.02)
for i in range(40, 101, 10):
    print(f"\r\x1b[Kprogress \x1b[32m{i}%\x1b[0m", end="", flush=True)
    time.sleep(0.05)
print()
print("after")
"""


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> tuple[int, int]:
    return VIEWPORTS[request.param]


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(
        home,
        f"[agents.lines]\ncommand = {agent_script(scripts, 'lines', LINES)}\n"
        f"[agents.progress]\ncommand = {agent_script(scripts, 'progress', PROGRESS)}\n",
    )
    d = start_daemon(home)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def context(browser: Any, viewport: tuple[int, int]) -> Iterator[Any]:
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


def open_page(context: Any, watch: PageWatch) -> Any:
    page = context.new_page()
    watch.attach(page)
    return page


def sign_in(context: Any, d: DaemonProcess, watch: PageWatch, path: str = "/") -> Any:
    page = open_page(context, watch)
    browser_sign_in(page, d.port, d.info.token, path)
    return page


def only_401s(errors: list[str]) -> bool:
    """Chromium logs the 401 of the page itself as a console error; nothing else may appear."""
    return all("401" in e for e in errors)


def test_settings_page_says_connected(
    context: Any, served: DaemonProcess, viewport: tuple[int, int]
) -> None:
    watch = PageWatch()
    page = sign_in(context, served, watch, "/settings")
    page.wait_for_selector("#conn.connected")
    assert page.locator("#conn").inner_text() == "connected"
    assert watch.errors == []
    served.terminate()  # and when the daemon goes, the page says so (the browser logs failures)
    page.wait_for_selector("#conn.reconnecting")


def test_a_browser_without_a_session_is_told_how_to_open_the_dashboard(
    context: Any, served: DaemonProcess, viewport: tuple[int, int]
) -> None:
    watch = PageWatch()
    page = open_page(context, watch)
    for path in ("/", "/settings", "/runs/abc123"):
        response = page.goto(f"http://127.0.0.1:{served.port}{path}")
        assert response is not None and response.status == 401
        assert response.headers["content-type"].startswith("text/html")
        expect(page.get_by_role("heading", level=1)).to_have_text("Open the dashboard from AIOS")
        main = page.locator("main")
        expect(main).to_contain_text("aios open")
        expect(main).to_contain_text("Open Dashboard")
        expect(main).to_contain_text("A sign-in lasts 7 days")
        # Dressed like the dashboard: its style sheet loaded (no inline style anywhere).
        assert page.evaluate("document.styleSheets.length") == 1
        assert page.evaluate("getComputedStyle(document.querySelector('.panel')).borderStyle") == (
            "solid"
        )
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport[0]
    response = page.goto(f"http://127.0.0.1:{served.port}/login?token=from-an-old-start")
    assert response is not None and response.status == 401
    expect(page.locator("main")).to_contain_text("This sign-in link does not work any more")
    assert page.context.cookies() == []
    assert only_401s(watch.errors)
    assert watch.dialogs == []


def test_a_sign_in_that_runs_out_shows_that_page(
    context: Any, served: DaemonProcess, viewport: tuple[int, int]
) -> None:
    watch = PageWatch()
    page = sign_in(context, served, watch)
    page.wait_for_selector("#conn.connected")
    # The cookie as the daemon would have issued it at a login 8 days ago.
    saved = json.loads((served.home / "run" / "session.json").read_text())
    keys = Secrets(token="", session=saved["session"], csrf=saved["csrf"])
    [cookie] = page.context.cookies()
    cookie["value"] = keys.issue_cookie(time.time() - SESSION_LIFETIME - 86400)
    page.context.add_cookies([cookie])
    page.get_by_label("Agent", exact=True).select_option("command")
    page.get_by_label("Prompt").fill("true")
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Open the dashboard from AIOS")
    assert served.client.request("GET", "/api/runs") == []
    assert only_401s(watch.errors)


def rgb(page: Any, selector: str, prop: str = "color") -> str:
    return str(page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))


def test_colours_and_a_progress_line_redrawn_live(
    context: Any, served: DaemonProcess, viewport: tuple[int, int], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    run = served.client.request("POST", "/api/runs", {"agent": "progress", "prompt": str(go)})
    log = f"/api/runs/{run['id']}/log"
    wait_until(lambda: b"progress 30%" in served.client.request_bytes("GET", log), what="30%")
    watch = PageWatch()
    page = sign_in(context, served, watch, f"/runs/{run['id']}")
    page.wait_for_selector("#conn.connected")
    page.evaluate("window.aiosMarker = 'same page'")
    assert page.locator("#output-tail").inner_text() == "progress 30%"
    go.touch()
    page.locator("#run-details .state-succeeded").wait_for()
    expect(page.locator("#output")).to_contain_text("after")
    lines = page.locator("#output").inner_text().strip().splitlines()
    assert lines == ["orange true bg inverse", "progress 100%", "after"]
    assert page.evaluate("window.aiosMarker") == "same page"  # redrawn live, not reloaded
    # 256 colours from the style sheet, 24-bit ones set by app.js; no inline style in markup.
    assert rgb(page, "#output .ansi-fg-208") == "rgb(255, 135, 0)"
    assert rgb(page, "#output .ansi-fg-rgb") == "rgb(18, 52, 86)"
    assert rgb(page, "#output .ansi-bg-rgb", "backgroundColor") == "rgb(200, 100, 50)"
    assert rgb(page, "#output .ansi-bg-rgb", "fontWeight") == "700"
    inverse = page.locator("#output .ansi-fg-inverse.ansi-bg-inverse")
    assert inverse.inner_text() == "inverse"
    assert rgb(page, "#output .ansi-bg-inverse", "backgroundColor") == rgb(page, "body")
    assert page.locator("#output .ansi-fg-2").inner_text() == "100%"
    # The only style properties are the ones app.js set through the CSSOM, from data-fg/-bg.
    assert page.locator("#output [style]:not([data-fg]):not([data-bg])").count() == 0
    html = page.locator("#output").inner_html()
    assert "\x1b" not in html and "\r" not in html
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
    assert watch.errors == []  # a CSP refusal of a style would be logged here


def test_a_page_opened_after_the_run_shows_the_same(
    context: Any, served: DaemonProcess, viewport: tuple[int, int], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    go.touch()
    run = served.client.request("POST", "/api/runs", {"agent": "progress", "prompt": str(go)})
    wait_until(
        lambda: served.client.request("GET", f"/api/runs/{run['id']}")["state"] == "succeeded",
        what="the run to end",
    )
    watch = PageWatch()
    page = sign_in(context, served, watch, f"/runs/{run['id']}")
    page.wait_for_selector("#conn.connected")
    lines = page.locator("#output").inner_text().strip().splitlines()
    assert lines == ["orange true bg inverse", "progress 100%", "after"]
    assert rgb(page, "#output .ansi-fg-rgb") == "rgb(18, 52, 86)"
    assert watch.errors == []


def finished(d: DaemonProcess, agent: str, prompt: str) -> dict[str, Any]:
    run = d.client.request("POST", "/api/runs", {"agent": agent, "prompt": prompt})

    def ended() -> dict[str, Any] | None:
        now = d.client.request("GET", f"/api/runs/{run['id']}")
        return now if now["state"] in ("succeeded", "failed") else None

    result: dict[str, Any] = wait_until(ended, what=f"run {run['id']} to end")
    return result


def test_the_newest_output_is_in_view_without_scrolling_the_page(
    context: Any, served: DaemonProcess, viewport: tuple[int, int]
) -> None:
    run = finished(served, "lines", "300")
    watch = PageWatch()
    page = sign_in(context, served, watch, f"/runs/{run['id']}")
    page.wait_for_selector("#conn.connected")
    width, height = viewport
    assert page.evaluate("document.documentElement.scrollHeight") <= height
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = page.locator("#output").bounding_box()
    assert box is not None and box["y"] + box["height"] <= height
    assert box["height"] >= 120  # room to read, not a sliver
    # Scrolled to its end, where the last line is.
    at_end = "o => o.scrollTop + o.clientHeight >= o.scrollHeight - 1"
    assert page.eval_on_selector("#output", at_end)
    assert page.locator("#output").inner_text().strip().endswith("line 299")
    # And so it stays while a run prints: the next run's lines arrive at the bottom, in view.
    page.get_by_role("button", name="Re-run").click()
    page.wait_for_url(lambda url: "/runs/" in url and run["id"] not in url)
    page.wait_for_selector("#conn.connected")
    page.locator("#run-details .state-succeeded").wait_for()
    expect(page.locator("#output")).to_contain_text("line 299")
    assert page.eval_on_selector("#output", at_end)
    assert page.evaluate("document.documentElement.scrollHeight") <= height
    assert watch.errors == []


def test_runs_come_within_the_first_screen_with_state_and_actions_in_reach(
    context: Any, served: DaemonProcess, viewport: tuple[int, int]
) -> None:
    for i in range(3):
        finished(served, "command", f"echo a long prompt for run {i} that will not fit; exit {i}")
    live = served.client.request("POST", "/api/runs", {"agent": "command", "prompt": "sleep 300"})
    watch = PageWatch()
    page = sign_in(context, served, watch)
    page.wait_for_selector("#conn.connected")
    width, height = viewport
    row = page.locator(f"#run-{live['id']}")
    row.locator(".state-running").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wrap = "w => w.scrollWidth <= w.clientWidth"
    assert page.eval_on_selector(".table-wrap", wrap)  # no sideways scroll inside either
    for locator in (row, row.locator(".state"), row.get_by_role("button", name="Stop")):
        box = locator.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert box["y"] + box["height"] <= height, box  # within the first screen
    # A table on a laptop, cards on a phone.
    display = row.evaluate("r => getComputedStyle(r).display")
    assert display == ("table-row" if width > 700 else "flex")
    failed = page.locator("#runs tr.run[data-state=failed]").first
    # Each figure says what it is on a card (the table's header row is out of sight there).
    name = "2" if width > 700 else "Exit 2"
    expect(failed.get_by_role("cell", name=name, exact=True)).to_be_visible()
    row.get_by_role("button", name="Stop").click()
    row.locator(".state-stopped").wait_for()
    assert watch.errors == []


def test_times_are_local_and_labelled_the_same_in_cli_and_dashboard(
    context: Any, home: Path, viewport: tuple[int, int]
) -> None:
    tz = "XYZ-5:30"  # a POSIX zone: named XYZ, 5 h 30 ahead of UTC (no tzdata needed)
    d = start_daemon(home, TZ=tz)
    try:
        run = finished(d, "command", "true")
        utc = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
        local = utc.astimezone(timezone(timedelta(hours=5, minutes=30)))
        ps = run_cli(home, "ps", "--all", TZ=tz)
        header, line = ps.stdout.splitlines()
        assert "STARTED (XYZ)" in header
        assert local.strftime("%Y-%m-%d %H:%M:%S") in line
        as_json = json.loads(run_cli(home, "ps", "--all", "--json", TZ=tz).stdout)
        assert as_json[0]["started_at"] == run["started_at"]  # programs get UTC
        watch = PageWatch()
        page = sign_in(context, d, watch)
        page.wait_for_selector("#conn.connected")
        if viewport[0] > 700:  # the column header; a phone's cards label each time instead
            expect(page.locator("thead")).to_contain_text("Started (XYZ)")
        cell = page.locator(f"#run-{run['id']} time")
        assert cell.inner_text() == local.strftime("%H:%M:%S")
        assert cell.get_attribute("title") == local.strftime("%Y-%m-%d %H:%M:%S XYZ")
        page.goto(f"http://127.0.0.1:{d.port}/runs/{run['id']}")
        expect(page.locator("#run-details")).to_contain_text(
            local.strftime("%Y-%m-%d %H:%M:%S") + " XYZ"
        )
        assert watch.errors == []
    finally:
        d.close()
