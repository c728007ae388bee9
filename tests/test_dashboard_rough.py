"""The dashboard's rough edges, in a real headless Chromium at a laptop's and a phone's size.

Each test runs at 1280x800 and at 390x844 against a real daemon with real agents.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from aios.credentials import SESSION_LIFETIME, Secrets
from tests.browser import PageWatch, browser
from tests.helpers import DaemonProcess, agent_script, start_daemon, write_config

__all__ = ["browser"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.daemon

VIEWPORTS = {"laptop": (1280, 800), "phone": (390, 844)}

LINES = "import sys\nfor i in range(int(sys.argv[1])):\n    print(f'line {i}')\n"


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> tuple[int, int]:
    return VIEWPORTS[request.param]


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(home, f"[agents.lines]\ncommand = {agent_script(scripts, 'lines', LINES)}\n")
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
    page.goto(f"http://127.0.0.1:{d.port}/login?token={d.info.token}&next={path}")
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
    served.terminate()  # and when the daemon goes, the page says so
    page.wait_for_selector("#conn.reconnecting")
    assert watch.errors == [] or all("ERR_CONNECTION_REFUSED" in e for e in watch.errors)


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
