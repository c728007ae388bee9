"""A run's live terminal on its page (issue 22), in a real headless Chromium against a real
daemon: typing in the page reaches the program and its answer shows, the panel's size reaches
the program, a late viewer sees the screen at once, an ended run shows its final screen
read-only, the phone's key row types what a phone keyboard cannot, and a full-screen program
(curses) is drawn where it draws itself. No test waits a fixed time: each waits for what the
screen shows.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser import PageWatch, browser, sign_in, signed_in_page
from tests.firefox import started_firefox
from tests.harness import agent_script
from tests.helpers import DaemonProcess, start_daemon, wait_until, write_config

__all__ = ["browser"]  # a fixture, imported so pytest finds it here

pytestmark = pytest.mark.daemon

# Each byte it reads, in hex, on a line of its own: what a key really sends.
KEYS = """import os, sys, tty
tty.setraw(0)
sys.stdout.write("ready\\r\\n"); sys.stdout.flush()
while True:
    data = os.read(0, 64)
    sys.stdout.write("got " + data.hex() + "\\r\\n"); sys.stdout.flush()
    if data == b"q":
        break
"""

# A full-screen program: a box round the screen, a title in its top border, a list inside, the
# terminal's size on the last line; redrawn on a resize, "q" ends it.
CURSES = """import curses

def main(screen):
    curses.curs_set(0)
    curses.start_color(); curses.use_default_colors()
    curses.init_pair(1, curses.COLOR_BLACK, curses.COLOR_CYAN)
    curses.init_pair(2, curses.COLOR_GREEN, -1)
    while True:
        screen.erase()
        rows, cols = screen.getmaxyx()
        screen.border()
        screen.addstr(0, 2, " AIOS curses demo ", curses.A_BOLD)
        for i, name in enumerate(["build", "test", "lint", "deploy"]):
            attr = curses.color_pair(1) if i == 1 else curses.color_pair(2)
            screen.addstr(2 + i, 4, f"{'>' if i == 1 else ' '} {name:<10} ok", attr)
        screen.addstr(rows - 2, 2, f"size {cols}x{rows}, q quits")
        screen.refresh()
        key = screen.getch()
        if key == ord("q"):
            return

curses.wrapper(main)
"""

# The screen as text, one string a row (xterm.js's buffer, as the page shows it).
SCREEN = """() => {
  const term = document.getElementById('terminal').terminal.term;
  const buffer = term.buffer.active;
  const rows = [];
  for (let y = 0; y < term.rows; y++) {
    rows.push(buffer.getLine(buffer.viewportY + y)?.translateToString(true) ?? '');
  }
  return rows;
}"""
MARKS = itertools.count(1)
# Null-safe: a wait that starts while the page is still navigating to the run sees no status yet.
STATUS = "() => document.getElementById('terminal-status')?.textContent ?? ''"
SIZE = """() => {
  const term = document.getElementById('terminal').terminal.term;
  return [term.cols, term.rows];
}"""


@pytest.fixture
def d(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    keys = agent_script(scripts, "keys", KEYS, prompt=False)
    tui = agent_script(scripts, "tui", CURSES, prompt=False)
    write_config(
        home,
        f'[agents.shell]\ncommand = ["sh"]\n'
        f"[agents.keys]\ncommand = {keys}\nterminal = true\n"
        f"[agents.tui]\ncommand = {tui}\nterminal = true\n",
    )
    daemon = start_daemon(home)
    try:
        yield daemon
    finally:
        daemon.terminate()


def launch(d: DaemonProcess, agent: str, **extra: Any) -> str:
    run = d.client.request("POST", "/api/runs", {"agent": agent, "prompt": "", **extra})
    assert isinstance(run, dict) and run["terminal"] is True
    return str(run["id"])


@contextmanager
def run_page(
    browser: Any, d: DaemonProcess, run_id: str, width: int = 1280, height: int = 800
) -> Iterator[tuple[Any, PageWatch]]:
    """A signed-in page on the run, its terminal connected (or showing an ended run)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch()
    watch.attach(page)
    try:
        sign_in(page, d.port, d.info.token, f"/runs/{run_id}")
        page.wait_for_function(f"() => /live|ended/.test(({STATUS})())")
        yield page, watch
    finally:
        context.close()


def launched(d: DaemonProcess, agent: str) -> dict[str, Any] | None:
    runs = d.client.request("GET", "/api/runs")
    assert isinstance(runs, list)
    return next((run for run in runs if run["agent"] == agent), None)


def screen(page: Any) -> list[str]:
    rows: list[str] = page.evaluate(SCREEN)
    return rows


def wait_for_row(page: Any, pattern: str, timeout: float = 20) -> re.Match[str]:
    """The first row of the page's terminal that ``pattern`` matches, once there is one."""
    regex = re.compile(pattern)

    def found() -> re.Match[str] | None:
        return next((m for row in screen(page) if (m := regex.fullmatch(row.strip()))), None)

    match: re.Match[str] = wait_until(found, timeout, f"a row matching {pattern!r} on the screen")
    return match


def type_in(page: Any, text: str) -> None:
    """Keystrokes, as a user types them into the focused terminal."""
    page.locator("#terminal .xterm-helper-textarea").focus()
    page.keyboard.type(text)


def stty_size(page: Any) -> tuple[int, int]:
    """The size the program's terminal has, as ``stty size`` says (rows, then columns); each
    call asks anew, under a mark of its own."""
    mark = f"size{next(MARKS)}"
    type_in(page, f"echo {mark} $(stty size)\n")
    match = wait_for_row(page, rf"{mark} (\d+) (\d+)")
    return int(match[1]), int(match[2])


def page_size(page: Any) -> tuple[int, int]:
    """The size the page's terminal has (rows, then columns)."""
    cols, rows = page.evaluate(SIZE)
    return rows, cols


def test_typing_in_the_page_reaches_the_program_and_its_answer_shows(
    browser: Any, d: DaemonProcess
) -> None:
    run_id = launch(d, "shell", terminal=True)
    with run_page(browser, d, run_id) as (page, watch):
        assert page.evaluate(STATUS) == "live"
        type_in(page, "echo $((6 * 7))\n")
        wait_for_row(page, "42")
        # A paste arrives as one input, the same way.
        page.locator("#terminal .xterm-helper-textarea").focus()
        page.evaluate(
            "() => document.getElementById('terminal').terminal.term.paste('echo pasted\\n')"
        )
        wait_for_row(page, "pasted")
        # The log keeps what the program wrote, as it wrote it.
        assert "42" in d.client.request_bytes("GET", f"/api/runs/{run_id}/log").decode()
        # A message the server cannot take is said on the page for a while, then it is live.
        page.evaluate("() => document.getElementById('terminal').terminal.socket.send('{x')")
        page.wait_for_function(f"() => ({STATUS})() !== 'live'")
        assert page.locator("#terminal-status.error").is_visible()
        page.wait_for_function(f"() => ({STATUS})() === 'live'")
        assert watch.errors == [] and watch.dialogs == []  # no CSP report either


def test_the_panel_size_reaches_the_program(browser: Any, d: DaemonProcess) -> None:
    run_id = launch(d, "shell", terminal=True)
    with run_page(browser, d, run_id) as (page, watch):
        before = wait_until(
            lambda: (size := page_size(page)) == stty_size(page) and size, 20,
            "the program's size to be the panel's",
        )  # fmt: skip
        page.set_viewport_size({"width": 900, "height": 600})
        smaller = wait_until(
            lambda: (size := page_size(page))[0] < before[0] and size[1] < before[1] and size,
            20, "the terminal to fit the smaller panel",
        )  # fmt: skip
        wait_until(lambda: stty_size(page) == smaller, 20, "the program to see the new size")
        assert watch.errors == []


def test_a_late_viewer_sees_the_screen_at_once_and_shares_it(
    browser: Any, d: DaemonProcess
) -> None:
    run_id = launch(d, "shell", terminal=True)
    with run_page(browser, d, run_id) as (first, _):
        type_in(first, "echo early-$((20 + 1))\n")
        wait_for_row(first, "early-21")
        with run_page(browser, d, run_id, width=900, height=700) as (second, watch):
            # At once: from the daemon's screen, before anything more is written.
            assert any(row.strip() == "early-21" for row in screen(second))
            # What one viewer types, both see.
            type_in(second, "echo late-$((40 + 2))\n")
            wait_for_row(second, "late-42")
            wait_for_row(first, "late-42")
            # The last resize wins: the first page now shows the second's size.
            wait_until(lambda: first.evaluate(SIZE) == second.evaluate(SIZE), 20, "one shared size")
            assert watch.errors == []


def test_a_dropped_connection_is_made_again_while_the_run_lives(
    browser: Any, d: DaemonProcess
) -> None:
    run_id = launch(d, "shell", terminal=True)
    with run_page(browser, d, run_id) as (page, watch):
        type_in(page, "echo before-$((1 + 1))\n")
        wait_for_row(page, "before-2")
        page.evaluate("() => document.getElementById('terminal').terminal.socket.close()")
        page.wait_for_function(f"() => ({STATUS})() !== 'live'")
        page.wait_for_function(f"() => ({STATUS})() === 'live'")
        wait_for_row(page, "before-2")  # the screen, drawn again from the daemon's
        type_in(page, "echo after-$((2 + 2))\n")
        wait_for_row(page, "after-4")
        assert watch.errors == []


def test_an_ended_run_shows_its_final_screen_read_only(browser: Any, d: DaemonProcess) -> None:
    run_id = launch(d, "shell", terminal=True)
    with run_page(browser, d, run_id) as (page, _):
        type_in(page, "echo final-$((3 * 3))\n")
        wait_for_row(page, "final-9")
        type_in(page, "exit 3\n")
        page.wait_for_function(f"() => ({STATUS})().includes('ended')")
        assert "exit 3" in page.evaluate(STATUS)
        assert page.locator("#terminal-keys").is_hidden()
    # A page opened afterwards shows the last screen, and cannot type.
    with run_page(browser, d, run_id) as (page, watch):
        assert "ended" in page.evaluate(STATUS)
        wait_for_row(page, "final-9")
        assert page.evaluate("() => document.getElementById('terminal').terminal.canType") is False
        type_in(page, "echo nothing\n")
        assert not any("nothing" in row for row in screen(page))
        assert watch.errors == []


def test_the_phone_key_row_types_what_a_phone_keyboard_lacks(
    browser: Any, d: DaemonProcess, tmp_path: Path
) -> None:
    run_id = launch(d, "keys")
    with run_page(browser, d, run_id, width=390, height=844) as (page, watch):
        wait_for_row(page, "ready")
        keys = page.locator("#terminal-keys")
        assert keys.is_visible()
        # Every key on the first screen, none cut off, each big enough for a thumb.
        for button in keys.locator("button").all():
            box = button.bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390
            assert box["y"] + box["height"] <= 844
            assert box["height"] >= 36
        terminal = page.locator("#terminal").bounding_box()
        assert terminal is not None and terminal["height"] > 300  # most of the screen
        page.screenshot(path=str(tmp_path / "phone.png"))
        for label, sent in [("^C", "03"), ("Esc", "1b"), ("Tab", "09"), ("^D", "04")]:
            keys.get_by_role("button", name=label).click()
            wait_for_row(page, f"got {sent}")
        for label, final in [("Up", "41"), ("Down", "42"), ("Right", "43"), ("Left", "44")]:
            keys.get_by_role("button", name=label).click()
            wait_for_row(page, f"got 1b5b{final}")  # ESC [ A: the cursor keys' normal mode
        type_in(page, "q")
        page.wait_for_function(f"() => ({STATUS})().includes('ended')")
        assert watch.errors == []


def test_a_full_screen_program_is_drawn_where_it_draws_itself(
    browser: Any, d: DaemonProcess
) -> None:
    run_id = launch(d, "tui")
    with run_page(browser, d, run_id) as (page, watch):
        title = wait_for_row(page, r"[┌+]─* AIOS curses demo ─*[┐+]")
        rows = screen(page)
        cols, height = page.evaluate(SIZE)
        assert rows[0].startswith(title[0][:2])  # the title is in the top border, at column 2
        assert rows[0][2:20] == " AIOS curses demo "
        assert rows[3][4:].startswith("> test")  # the chosen line, where curses put it
        assert rows[height - 2].strip().startswith(f"│ size {cols}x{height}")
        assert rows[height - 1].startswith("└") and rows[height - 1].rstrip().endswith("┘")
        # Its colours: the chosen line black on cyan (xterm.js's palette classes).
        page.wait_for_selector("#terminal .xterm-bg-6")
        type_in(page, "q")
        page.wait_for_function(f"() => ({STATUS})().includes('ended')")
        assert watch.errors == []


def test_the_launch_form_box_starts_a_run_in_a_terminal(browser: Any, d: DaemonProcess) -> None:
    with signed_in_page(browser, d.port, d.info.token) as (page, watch):
        agent = page.get_by_label("Agent", exact=True)
        box = page.get_by_label("in a terminal")
        agent.select_option("keys")  # terminal = true in its config: the box follows
        assert box.is_checked()
        agent.select_option("shell")
        assert not box.is_checked()
        box.check()
        page.get_by_role("button", name="Launch").click()
        run = wait_until(lambda: launched(d, "shell"), 20, "the run")
        assert run["terminal"] is True
        page.locator(f"#run-{run['id']} a").click()
        page.wait_for_url(f"**/runs/{run['id']}")
        page.wait_for_function(f"() => ({STATUS})() === 'live'")
        assert watch.errors == []


# A true-colour word: xterm.js styles it with a style attribute, which the CSP refuses unless
# xterm-csp.js hands it to the CSSOM (docs/security.md, "xterm.js under the CSP").
TRUE_COLOUR = 'printf "\\033[38;2;255;100;0mtrue-colour\\033[0m\\n"\r'
COLOUR_OF = """
  const span = [...document.querySelectorAll('#terminal .xterm-rows span')]
    .find(s => s.textContent === arguments[0]);
  return span ? getComputedStyle(span).color : null;
"""


def test_chromium_draws_the_terminal_in_colour_under_the_csp(
    browser: Any, d: DaemonProcess
) -> None:
    run_id = launch(d, "shell", terminal=True)
    with run_page(browser, d, run_id) as (page, watch):
        type_in(page, TRUE_COLOUR.replace("\r", "\n"))
        wait_for_row(page, "true-colour")
        # The buffer has it before the next frame draws it: wait for the word on the page.
        colour = wait_until(
            lambda: page.evaluate(f"function () {{ {COLOUR_OF} }}", "true-colour"), 20, "the word"
        )
        assert colour == "rgb(255, 100, 0)"
        assert page.evaluate("() => document.querySelectorAll('style').length") == 0
        assert "monospace" in page.evaluate(
            "() => getComputedStyle(document.querySelector('#terminal .xterm-rows')).fontFamily"
        )
        assert watch.errors == []  # Chromium reports each refused style as a console error


def test_firefox_draws_the_terminal_in_colour_under_the_csp(
    d: DaemonProcess, tmp_path: Path
) -> None:
    run_id = launch(d, "shell", terminal=True)
    query = urlencode({"token": d.info.token, "next": f"/runs/{run_id}"})
    with started_firefox(tmp_path / "profile", [f"http://127.0.0.1:{d.port}/login?{query}"]) as ff:
        live = "return document.getElementById('terminal-status')?.textContent === 'live'"
        wait_until(lambda: ff.script(live), 30, "the terminal to be live in Firefox")
        send = (
            "document.getElementById('terminal').terminal.send({type: 'input', data: arguments[0]})"
        )
        ff.script(send, [TRUE_COLOUR])
        colour = wait_until(lambda: ff.script(COLOUR_OF, ["true-colour"]), 30, "the word")
        assert colour == "rgb(255, 100, 0)"
        assert ff.script("return document.querySelectorAll('style').length") == 0
        rows = "return getComputedStyle(document.querySelector('#terminal .xterm-rows')).fontFamily"
        assert "monospace" in ff.script(rows)
