"""The dashboard in a real headless Chromium against a real daemon with real agents."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from aios.credentials import SESSION_LIFETIME
from bench.history import seed
from tests.browser import PageWatch, browser, sign_in, signed_in_page
from tests.helpers import DaemonProcess, agent_script, start_daemon, write_config

__all__ = ["browser"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.daemon

TICKER = (
    "import sys, time\nfor i in range(int(sys.argv[1])):\n"
    "    print(f'line {i}', flush=True)\n    time.sleep(0.15)\n"
)
XSS = (
    "print('<script>alert(\"xss\")</script>')\n"
    "print('<img src=x onerror=\"alert(1)\">')\n"
    "print('\\x1b[1;31mbold red\\x1b[0m plain')\n"
    "raise SystemExit(2)\n"
)


@pytest.fixture
def dash_home(home: Path, tmp_path: Path) -> Path:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(
        home,
        f"[agents.ticker]\ncommand = {agent_script(scripts, 'ticker', TICKER)}\n"
        f"[agents.xss]\ncommand = {agent_script(scripts, 'xss', XSS, prompt=False)}\n"
        '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n',
    )
    return home


@pytest.fixture
def served(dash_home: Path) -> Iterator[DaemonProcess]:
    d = start_daemon(dash_home)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def page(browser: Any, served: DaemonProcess) -> Iterator[tuple[Any, PageWatch]]:
    with signed_in_page(browser, served.port, served.info.token, 800, 10_000) as signed_in:
        yield signed_in


def mark_no_reload(page: Any) -> None:
    page.evaluate("window.aiosMarker = 'same page'")


def assert_no_reload(page: Any) -> None:
    assert page.evaluate("window.aiosMarker") == "same page"


def launch(page: Any, agent: str, prompt: str = "") -> None:
    page.get_by_label("Agent", exact=True).select_option(agent)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Launch").click()


def test_login_sets_a_session_and_leaves_the_token_out_of_the_address_bar(
    page: tuple[Any, PageWatch], served: DaemonProcess
) -> None:
    p, watch = page
    assert p.url == f"http://127.0.0.1:{served.port}/"
    cookies = p.context.cookies()
    assert [c["name"] for c in cookies] == [f"aios_session_{served.port}"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    # Kept for the session's lifetime, not for ever (a window of an hour: this is no timing).
    assert 0 <= time.time() + SESSION_LIFETIME - cookies[0]["expires"] < 3600
    assert p.locator("#conn").inner_text() == "connected"
    assert watch.errors == []


def test_launch_shows_the_final_state_without_reload(page: tuple[Any, PageWatch]) -> None:
    p, watch = page
    mark_no_reload(p)
    launch(p, "command", "echo launched from the browser; exit 3")
    row = p.locator("#runs tr.run").first
    row.locator(".state-failed").wait_for()
    assert row.locator("td").nth(5).inner_text() == "3"
    assert "echo launched" in row.inner_text()
    assert p.locator("#count-failed").inner_text() == "1"
    assert_no_reload(p)
    assert p.get_by_label("Prompt").input_value() == ""
    assert watch.errors == []


def test_launch_errors_are_shown_next_to_the_form(page: tuple[Any, PageWatch]) -> None:
    p, watch = page
    p.get_by_label("Agent", exact=True).select_option("command")
    p.get_by_label("Prompt").fill("true")
    p.get_by_label("Working directory").fill("/no/such/dir")
    p.get_by_role("button", name="Launch").click()
    expect(p.locator("#launch [data-errors]")).to_contain_text("does not exist")
    # A 422 is an expected answer, not a page error; the browser logs failed fetches though.
    assert all("422" in e for e in watch.errors)


def test_run_page_streams_output_line_by_line(page: tuple[Any, PageWatch]) -> None:
    p, watch = page
    launch(p, "ticker", "20")
    p.locator("#runs tr.run a").first.click()
    p.wait_for_selector("#run-details")
    output = p.locator("#output")
    expect(output).to_contain_text("line 2")
    early = output.inner_text()
    assert "line 19" not in early  # it arrives while the agent runs, not all at the end
    p.locator("#run-details .state-succeeded").wait_for()
    expect(output).to_contain_text("line 19")
    lines = output.inner_text().strip().splitlines()
    assert lines == [f"line {i}" for i in range(20)]  # nothing twice, nothing missing
    assert p.get_by_role("button", name="Re-run").is_visible()
    assert watch.errors == []


def test_stop_from_the_run_page(page: tuple[Any, PageWatch], served: DaemonProcess) -> None:
    p, watch = page
    launch(p, "sleeper")
    p.locator("#runs tr.run .state-running").first.wait_for()
    p.locator("#runs tr.run a").first.click()
    p.get_by_role("button", name="Stop").click()
    p.locator("#run-details .state-stopped").wait_for()
    assert p.get_by_role("button", name="Re-run").is_visible()
    assert watch.errors == []


def test_output_payloads_are_inert_and_colours_rendered(page: tuple[Any, PageWatch]) -> None:
    p, watch = page
    launch(p, "xss")
    p.locator("#runs tr.run .state-failed").first.wait_for()
    p.locator("#runs tr.run a").first.click()
    expect(p.locator("#output")).to_contain_text("plain")
    text = p.locator("#output").inner_text()
    assert '<script>alert("xss")</script>' in text
    assert '<img src=x onerror="alert(1)">' in text
    assert "\x1b" not in text and "[1;31m" not in text
    assert p.locator("#output script, #output img").count() == 0
    red = p.locator("#output .ansi-fg-1.ansi-bold")
    assert red.inner_text() == "bold red"
    assert watch.dialogs == []
    assert watch.errors == []


def test_filters_and_delete(page: tuple[Any, PageWatch]) -> None:
    p, watch = page
    launch(p, "command", "exit 0")
    p.locator("#runs tr.run .state-succeeded").first.wait_for()
    launch(p, "command", "exit 1")
    p.locator("#runs tr.run .state-failed").first.wait_for()
    p.get_by_role("link", name="failed", exact=True).click()
    p.wait_for_url(re.compile(r"filter=failed"))
    assert p.locator("#runs tr.run").count() == 1
    p.get_by_role("button", name=re.compile("^Delete run")).click()
    p.locator("#runs tr.run").first.wait_for(state="detached")
    expect(p.locator("#count-total")).to_have_text("1")  # the summary follows the deletion
    assert watch.errors == []


def test_reconnects_and_resyncs_after_a_daemon_restart(
    page: tuple[Any, PageWatch], served: DaemonProcess
) -> None:
    p, _ = page
    mark_no_reload(p)
    assert served.terminate() == 0
    p.wait_for_selector("#conn.reconnecting")
    again = start_daemon(served.home)
    try:
        assert again.port == served.port  # the next daemon takes the same port back
        run = again.client.request(
            "POST", "/api/runs", {"agent": "command", "prompt": "echo after restart"}
        )
        p.wait_for_selector("#conn.connected", timeout=20_000)
        p.locator(f"#run-{run['id']}").wait_for(timeout=20_000)
        assert p.locator("#count-total").inner_text() == "1"
    finally:
        again.close()


def test_a_run_both_rendered_and_replayed_shows_once(browser: Any, served: DaemonProcess) -> None:
    # The race of a run created while the page renders (its event id is taken before its rows
    # are read), made certain: the stream is pointed back before a run the page already shows.
    with signed_in_page(browser, served.port, served.info.token) as (p, watch):
        before = re.search(r"after=(\d+)", p.locator("#events").get_attribute("hx-sse:connect"))
        assert before is not None
        run = served.client.request("POST", "/api/runs", {"agent": "sleeper"})
        p.locator(f"#run-{run['id']}").wait_for()
        p.route(
            re.compile(r"/ui/events\?"),
            lambda route: route.continue_(
                url=re.sub(r"after=\d+", f"after={before[1]}", route.request.url)
            ),
        )
        p.reload()
        p.wait_for_selector("#conn.connected")
        served.client.request("POST", f"/api/runs/{run['id']}/stop")
        # The stop comes after the replayed creation: once the row shows it, the replay is in.
        p.locator(f"#run-{run['id']}[data-state=stopped]").wait_for()
        assert p.locator(f"#run-{run['id']}").count() == 1
        assert watch.errors == []


@pytest.mark.skipif(sys.platform != "linux", reason="screenshots are made on the CI machine")
def test_pages_render_at_narrow_width(page: tuple[Any, PageWatch]) -> None:
    p, watch = page
    p.set_viewport_size({"width": 420, "height": 800})
    for path in ("/", "/settings"):
        p.goto(p.url.split("/", 3)[0] + "//" + p.url.split("/", 3)[2] + path)
        width = p.evaluate("document.documentElement.scrollWidth")
        assert width <= 430, f"{path} scrolls sideways at 420 px ({width} px)"
    assert watch.errors == []


def test_history_paginates(browser: Any, home: Path) -> None:

    # Playwright's loop owns this thread while the browser is open: seed on another one.
    seed(home, 60)
    d = start_daemon(home)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        p = context.new_page()
        watch = PageWatch()
        watch.attach(p)
        sign_in(p, d.port, d.info.token)
        assert p.locator("#runs tr.run").count() == 50
        assert p.locator("#count-total").inner_text() == "60"
        p.get_by_role("button", name="Older runs").click()
        expect(p.locator("#runs tr.run")).to_have_count(60)
        assert p.get_by_role("button", name="Older runs").count() == 0
        p.goto(f"http://127.0.0.1:{d.port}/settings")
        expect(p.locator("main")).to_contain_text("AIOS 0.1.0")
        expect(p.locator("main")).to_contain_text(str(home / "config" / "config.toml"))
        assert watch.errors == []
    finally:
        context.close()
        d.close()


def test_start_at_login_from_settings(page: tuple[Any, PageWatch], served: DaemonProcess) -> None:
    p, watch = page
    p.goto(f"http://127.0.0.1:{served.port}/settings")
    expect(p.locator("main")).to_contain_text("disabled")
    p.get_by_role("button", name="Enable").click()
    expect(p.get_by_role("button", name="Disable")).to_be_visible()
    entry = served.home / "xdg" / "autostart" / "aios.desktop"
    assert entry.exists() and "--no-browser" in entry.read_text()
    p.get_by_role("button", name="Disable").click()
    expect(p.get_by_role("button", name="Enable")).to_be_visible()
    assert not entry.exists()
    assert watch.errors == []
