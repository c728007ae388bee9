"""The tray on a plain X desktop: Xvfb with trayer, the X (XEmbed) backend, owning a real daemon.

What issue 13 saw there, each checked here: the icon shrinking to 1 px after state changes,
a stale tooltip while pystray's X loop waited on the server, and a shutdown that hung while the
X server did not answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from aios.desktop.icon import IconModel, IconState, at_size, draw, status, tooltip
from aios.desktop.menu import find
from aios.paths import Paths
from tests.browser import CHROMIUM_ARGS, browser, chromium_path, signed_in_page
from tests.desktop import start_aios, trayer, xvfb
from tests.helpers import (
    DaemonProcess,
    end_process,
    pids_alive,
    require_tool,
    run_cli,
    wait_until,
    write_config,
)

__all__ = ["browser"]  # the fixture, imported so pytest finds it here

pytestmark = [
    pytest.mark.daemon,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 tray tests"),
]

# Quit or SIGINT returns within this long, plus the time the runs take to stop, even when the
# X server has stopped answering (README, "The tray icon"). Measured: about 2.5 s.
SHUTDOWN_BOUND = 10.0
# A change shows on the icon within this long (README); generous for a loaded 2-core machine.
UPDATE_BOUND = 5.0


@pytest.fixture(scope="module")
def xdisplay() -> Iterator[str]:
    """A private Xvfb display with trayer docked at the top, as a desktop panel would be."""
    require_tool("xwininfo")
    with xvfb() as (display, _server), trayer(display):
        yield display


@dataclass
class IconWindow:
    width: int
    height: int
    name: str
    image: Image.Image
    docked: bool


def icon_window(display: str) -> IconWindow | None:
    """Our icon's window as the X server has it: size, title, pixels, and whether it is docked."""
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.error import XError

    conn = xdisplay.Display(display)
    try:
        root = conn.screen().root
        pending = list(root.query_tree().children)
        while pending:
            window = pending.pop()
            try:
                wm_class = window.get_wm_class()
                if wm_class and wm_class[0] == "aiosSystemTrayIcon":
                    geometry = window.get_geometry()
                    utf8 = conn.intern_atom("UTF8_STRING")
                    # One request from offset 0: get_full_property reads a long title in two,
                    # and a title shortened in between makes the second a BadValue, which
                    # python-xlib files under RandR's BadRRModeError (registered at code 2) and
                    # then fails to read (AttributeError: no sequence_number).
                    prop = window.get_property(conn.intern_atom("_NET_WM_NAME"), utf8, 0, 1024)
                    name = prop.value.decode() if prop else ""
                    raw = window.get_image(
                        0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF
                    )
                    image = Image.frombytes(
                        "RGB", (geometry.width, geometry.height), raw.data, "raw", "BGRX"
                    )
                    parent = window.query_tree().parent
                    return IconWindow(geometry.width, geometry.height, name, image, parent != root)
                pending.extend(window.query_tree().children)
            except XError:  # a window that went away while we looked
                continue
        return None
    finally:
        conn.close()


def docked(display: str) -> bool:
    window = icon_window(display)
    return window is not None and window.docked


def expected_pixels(model: IconModel, width: int, height: int) -> Image.Image:
    """What the X backend paints for ``model``: the icon drawn at the window's size (never a
    scaled-down 64 px one: its badge would be a smudge), on an opaque window."""
    out = Image.new("RGB", (width, height))
    picture = at_size(draw(model), min(width, height))
    out.paste(picture.resize((width, height), Image.Resampling.LANCZOS))
    return out


def shows(display: str, model: IconModel) -> bool:
    """The docked icon shows ``model``: its tooltip and, pixel for pixel, its picture."""
    window = icon_window(display)
    return (
        window is not None
        and window.docked
        and window.name == tooltip(model)
        and not ImageChops.difference(
            window.image, expected_pixels(model, window.width, window.height)
        ).getbbox()
    )


def start_tray(home: Path, display: str | None, log: Path) -> DaemonProcess:
    return start_aios(home, {"DISPLAY": display} if display else {}, log)


def test_tray_docks_serves_and_sigterm_leaves_nothing(
    xdisplay: str, home: Path, tmp_path: Path
) -> None:
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    log = tmp_path / "aios.err"
    tray = start_tray(home, xdisplay, log)
    try:
        wait_until(lambda: docked(xdisplay), timeout=20, what="the icon to dock in trayer")
        assert "tray: plain X icon (XEmbed) (no menu: no StatusNotifierItem host" in log.read_text()
        assert tray.client.request("GET", "/api/status")["pid"] == tray.proc.pid
        run = tray.client.request("POST", "/api/runs", {"agent": "sleeper"})
        pid = wait_until(
            lambda: tray.client.request("GET", f"/api/runs/{run['id']}")["pid"], what="agent pid"
        )
        tray.proc.send_signal(signal.SIGTERM)
        assert tray.finish(30) == 0, log.read_text()
        assert not tray.runtime_file.exists()
        assert pids_alive([pid]) == []
        assert icon_window(xdisplay) is None
        assert "Traceback" not in log.read_text()
    finally:
        tray.close()


def test_the_tray_draws_a_count_without_loading_a_font(
    xdisplay: str, home: Path, tmp_path: Path
) -> None:
    """Pillow's font code and FreeType (1.5 MiB, kept for good once loaded) stay out of the tray
    while it shows a run going: the badge's digits at panel size are pixels of our own, and the
    picture the backend is handed only carries the model (issue 23)."""
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    tray = start_tray(home, xdisplay, tmp_path / "aios.err")
    try:
        wait_until(lambda: docked(xdisplay), timeout=20, what="the icon to dock in trayer")
        tray.client.request("POST", "/api/runs", {"agent": "sleeper"})
        model = IconModel(IconState.RUNNING, running=1)
        wait_until(lambda: shows(xdisplay, model), timeout=UPDATE_BOUND, what="a count of 1")
        maps = Path(f"/proc/{tray.proc.pid}/maps").read_text().splitlines()
        assert not [m for m in maps if "_imagingft" in m or "libfreetype" in m]
    finally:
        tray.close()


def test_icon_keeps_its_size_image_and_tooltip_through_rapid_changes(
    xdisplay: str, home: Path, tmp_path: Path
) -> None:
    """A dozen state changes in quick succession: the docked icon stays its size all along,
    and ends showing the current picture and tooltip (pystray's backend shrank it to 1 px)."""
    log = tmp_path / "aios.err"
    tray = start_tray(home, xdisplay, log)
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:  # the size, as often as X answers, while the changes go on
        while not done.is_set():
            window = icon_window(xdisplay)
            if window is not None and window.docked:
                samples.append((window.width, window.height))

    try:
        wait_until(lambda: docked(xdisplay), timeout=20, what="the icon to dock in trayer")
        before = icon_window(xdisplay)
        assert before is not None and before.width >= 16 and before.height >= 16, before
        assert before.name == "AIOS — idle"
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        prompts = [f"exit {i % 2}" for i in range(12)]  # six succeed, six fail
        runs = [
            tray.client.request("POST", "/api/runs", {"agent": "command", "prompt": p})
            for p in prompts
        ]
        wait_until(
            lambda: all(
                tray.client.request("GET", f"/api/runs/{r['id']}")["state"]
                in ("succeeded", "failed")
                for r in runs
            ),
            timeout=30,
            what="the dozen runs to end",
        )
        model = IconModel(IconState.ATTENTION, 0, 6)

        def current() -> bool:
            window = icon_window(xdisplay)
            return (
                window is not None
                and window.docked
                and (window.width, window.height) == (before.width, before.height)
                and window.name == tooltip(model)
                and not ImageChops.difference(
                    window.image, expected_pixels(model, window.width, window.height)
                ).getbbox()
            )

        wait_until(current, timeout=UPDATE_BOUND, what=f"the icon to show {tooltip(model)!r}")
        done.set()
        sampler.join(5)
        assert samples, "the icon was never seen docked during the changes"
        assert set(samples) == {(before.width, before.height)}, sorted(set(samples))
    finally:
        done.set()
        tray.close()


def test_the_docked_icon_calls_for_attention_until_the_dashboard_is_viewed(
    xdisplay: str, browser: Any, home: Path, tmp_path: Path
) -> None:
    """A failed run turns the docked icon to attention; loading the dashboard in a real browser,
    not through the tray, turns it back (the daemon keeps what is unseen, the page says it was
    seen). What the icon shows is what the API says."""
    tray = start_tray(home, xdisplay, tmp_path / "aios.err")
    try:
        wait_until(lambda: docked(xdisplay), timeout=20, what="the icon to dock in trayer")
        tray.client.request("POST", "/api/runs", {"agent": "command", "prompt": "exit 5"})
        failed = IconModel(IconState.ATTENTION, failed=1)
        wait_until(lambda: shows(xdisplay, failed), UPDATE_BOUND * 4, f"{tooltip(failed)!r}")
        assert tray.client.request("GET", "/api/status")["unseen"]["failed"] == 1
        with signed_in_page(browser, tray.port, tray.info.token):
            idle = IconModel(IconState.IDLE)
            wait_until(lambda: shows(xdisplay, idle), UPDATE_BOUND, "the icon to turn idle")
        assert tray.client.request("GET", "/api/status")["unseen"]["total"] == 0
        assert tray.terminate() == 0
    finally:
        tray.close()


def test_sigint_returns_in_bounded_time_while_the_x_server_is_stopped(
    home: Path, tmp_path: Path
) -> None:
    """The X server stops answering (SIGSTOP) with a run going and the icon mid-update; SIGINT
    still stops the run, removes the runtime file and exits 0 within SHUTDOWN_BOUND."""
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    log = tmp_path / "aios.err"
    with xvfb() as (display, server), trayer(display):
        tray = start_tray(home, display, log)
        try:
            wait_until(lambda: docked(display), timeout=20, what="the icon to dock in trayer")
            run = tray.client.request("POST", "/api/runs", {"agent": "sleeper"})
            pid = wait_until(
                lambda: tray.client.request("GET", f"/api/runs/{run['id']}")["pid"],
                what="agent pid",
            )
            server.send_signal(signal.SIGSTOP)
            try:
                # State changes while the server is stopped: the icon has updates to send.
                for _ in range(3):
                    tray.client.request(
                        "POST", "/api/runs", {"agent": "command", "prompt": "exit 1"}
                    )
                started = time.monotonic()
                tray.proc.send_signal(signal.SIGINT)
                code = tray.finish(SHUTDOWN_BOUND + 20)
                elapsed = time.monotonic() - started
            finally:
                server.send_signal(signal.SIGCONT)
            assert code == 0, log.read_text()
            assert elapsed < SHUTDOWN_BOUND, f"{elapsed:.1f} s"
            print(f"shutdown with the X server stopped: {elapsed:.2f} s")
            assert not tray.runtime_file.exists()
            assert pids_alive([pid]) == []
        finally:
            tray.close()


def test_no_display_runs_headless_and_says_why(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "aios.err"
    tray = start_tray(home, None, log)
    try:
        assert tray.client.request("GET", "/api/status")["pid"] == tray.proc.pid
        assert tray.terminate() == 0
        assert "running headless: no display" in log.read_text()
    finally:
        tray.close()


# -- the menu, against the real service (no icon) ------------------------------------------------


@pytest.fixture
def tray_in_process(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Tray object with its real service, without an icon: its menu entries are data."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    fake_browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(fake_browser))
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    from aios.tray import Tray

    tray = Tray(Paths.from_env({"AIOS_HOME": str(home)}), open_browser=False)
    tray.service.start()
    tray._follow_service()
    try:
        yield tray, opened
    finally:
        tray.shutdown()


def test_menu_actions_against_the_running_service(tray_in_process: Any) -> None:
    tray, opened = tray_in_process
    entries = tray.menu_entries()
    assert find(entries, "Open Dashboard").default
    find(entries, "Open Dashboard").activate()
    wait_until(opened.exists, what="the browser to be asked")
    page = Path(opened.read_text().strip().removeprefix("file://"))
    assert "name='token'" in page.read_text()

    launch = find(entries, "Launch")
    names = [e.text for e in launch.items]
    assert "sleeper" in names and "Command" in names
    launch.find("sleeper").activate()
    assert (
        "name='next' value='/?agent=sleeper#launch'"
        in Path(opened.read_text().splitlines()[-1].removeprefix("file://")).read_text()
    )

    daemon = tray.service.daemon
    run = tray.service.submit(daemon.launch("sleeper")).result(10)
    wait_until(lambda: tray.state.running == 1, what="the tray to see the run")
    assert "1 running" in tray.status_text()
    recent = find(tray.menu_entries(), "Recent runs").items
    assert recent[0].text.startswith("sleeper")
    find(tray.menu_entries(), "Stop all runs").activate()
    wait_until(
        lambda: tray.service.submit(daemon.get_run(run.id)).result(5).state.value == "stopped",
        what="the run to stop",
    )
    # The counts follow the run's end a moment later (the summary event).
    wait_until(
        lambda: not find(tray.menu_entries(), "Stop all runs").enabled,
        what="Stop all runs to be disabled",
    )

    autostart = find(tray.menu_entries(), "Start at login")
    assert autostart.checked is False
    autostart.activate()
    assert find(tray.menu_entries(), "Start at login").checked is True
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "aios.desktop"
    assert entry.exists()
    find(tray.menu_entries(), "Start at login").activate()
    assert not entry.exists()

    find(
        tray.menu_entries(), "Quit"
    ).activate()  # no icon loop here: quitting leaves it to shutdown()


def test_menu_line_and_tooltip_count_the_same_things(tray_in_process: Any) -> None:
    """The menu's status line is the tooltip's, word for word: runs going now, and what failed
    since you last looked (never the history's failures, never "0 queued")."""
    tray, _ = tray_in_process
    daemon = tray.service.daemon
    for prompt in ("exit 1", "exit 2"):  # history: two failures, seen below
        tray.service.submit(daemon.launch("command", prompt)).result(10)
    wait_until(lambda: tray.state.unseen.failed == 2, what="two failures")
    tray.service.submit(daemon.seen()).result(10)
    wait_until(lambda: tray.state.unseen.total == 0, what="the tray to follow the daemon")
    tray.service.submit(daemon.launch("sleeper")).result(10)
    tray.service.submit(daemon.launch("command", "exit 3")).result(10)
    wait_until(
        lambda: tray.state.running == 1 and tray.state.unseen.failed == 1,
        what="one run going and one new failure",
    )
    model = tray.state.model()
    line = "1 running · 1 failed since you last looked"
    assert status(model) == line
    assert tray.status_text() == line
    assert tray.title(model) == f"AIOS — {line}"
    assert find(tray.menu_entries(), line).enabled is False
    tray.service.submit(daemon.stop_all()).result(30)
    tray.service.submit(daemon.seen()).result(10)
    wait_until(lambda: tray.status_text() == "Idle", what="the menu to say idle")
    assert tray.title(tray.state.model()) == "AIOS — idle"


def unseen_total(tray: Any) -> int:
    return int(tray.service.submit(tray.service.daemon.unseen()).result(10).total)


def test_a_failed_run_draws_attention_until_a_browser_shows_the_dashboard(
    tray_in_process: Any, browser: Any
) -> None:
    """The tray's Open Dashboard only asks for a page: it is the page, loaded in a real browser
    and in view, that clears the attention, for the tray and the API alike."""
    tray, _ = tray_in_process
    daemon = tray.service.daemon
    tray.service.submit(daemon.launch("command", "exit 4")).result(10)
    wait_until(lambda: tray.state.model().state is IconState.ATTENTION, what="attention")
    assert tray.state.model().failed == 1
    tray.open_dashboard()  # a stand-in browser (the fixture's) that shows nothing
    assert tray.state.model().state is IconState.ATTENTION  # asked for, not yet seen
    info = tray.service.info
    with signed_in_page(browser, info.port, info.token) as (page, watch):
        wait_until(lambda: tray.state.model().state is IconState.IDLE, what="the page to clear it")
        assert unseen_total(tray) == 0
        assert page.locator("#unseen").is_hidden()
        assert page.title() == "AIOS — overview"
        assert watch.errors == []


def test_aios_open_in_a_real_chromium_clears_the_trays_attention(
    tray_in_process: Any, home: Path, tmp_path: Path
) -> None:
    """``aios open``'s own route, end to end: the sign-in file it writes, handed to Chromium on
    its command line as a desktop hands a default browser a file (a fresh profile, no test
    driver in the page). Signing in lands on the overview, which clears the attention."""
    tray, _ = tray_in_process
    daemon = tray.service.daemon
    tray.service.submit(daemon.launch("command", "exit 8")).result(10)
    wait_until(lambda: tray.state.model().state is IconState.ATTENTION, what="attention")
    record = tmp_path / "asked.txt"
    opener = tmp_path / "xdg-open.sh"
    opener.write_text(f'#!/bin/sh\necho "$1" >> {record}\n')
    opener.chmod(0o755)
    result = run_cli(home, "open", BROWSER=str(opener))
    assert result.returncode == 0, result.stderr
    address = record.read_text().split()[-1]
    assert address.startswith("file://")
    chromium = subprocess.Popen(
        [
            chromium_path(),
            "--headless",
            *CHROMIUM_ARGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            address,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: tray.state.model().state is IconState.IDLE,
            timeout=60,
            what="the page aios open opened to clear the attention",
        )
        assert unseen_total(tray) == 0
    finally:
        end_process(chromium)


# Playwright's pages are always in view; this makes one that starts in a background tab.
BACKGROUND_TAB = """
window.aiosTestHidden = true;
Object.defineProperty(Document.prototype, "visibilityState",
  { get: () => (window.aiosTestHidden ? "hidden" : "visible"), configurable: true });
Object.defineProperty(Document.prototype, "hidden",
  { get: () => window.aiosTestHidden, configurable: true });
"""


def test_a_run_page_in_a_background_tab_clears_attention_once_it_comes_into_view(
    tray_in_process: Any, browser: Any
) -> None:
    """The notification's page (a failed run's), opened by any route: while its tab is in the
    background its title carries the count and nothing is cleared; in view, it is seen."""
    tray, _ = tray_in_process
    daemon = tray.service.daemon
    run = tray.service.submit(daemon.launch("command", "exit 6")).result(10)
    wait_until(lambda: tray.state.model().state is IconState.ATTENTION, what="attention")
    info = tray.service.info
    context = browser.new_context()
    try:
        context.add_init_script(BACKGROUND_TAB)
        page = context.new_page()
        page.set_default_timeout(15_000)
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.goto(f"http://127.0.0.1:{info.port}/login?token={info.token}&next=/runs/{run.id}")
        page.wait_for_selector("#conn.connected")
        assert page.title().startswith("(1) ")
        assert page.locator("#unseen").inner_text() == "1 failed since you last looked"
        assert posts == [] and tray.state.model().state is IconState.ATTENTION
        page.evaluate(
            "window.aiosTestHidden = false; document.dispatchEvent(new Event('visibilitychange'))"
        )
        wait_until(lambda: tray.state.model().state is IconState.IDLE, what="the page to clear it")
        assert [url.split("/", 3)[3] for url in posts] == ["ui/seen"]
        title = f"AIOS — command {run.id}"
        wait_until(lambda: page.title() == title, what="the title without the count")
    finally:
        context.close()


def test_a_failure_while_the_dashboard_is_in_front_of_you_is_seen(
    tray_in_process: Any, browser: Any
) -> None:
    tray, _ = tray_in_process
    daemon = tray.service.daemon
    info = tray.service.info
    with signed_in_page(browser, info.port, info.token) as (page, _):
        assert page.evaluate("document.hasFocus()")
        run = tray.service.submit(daemon.launch("command", "exit 7")).result(10)
        page.locator(f"#run-{run.id} .state-failed").wait_for()
        wait_until(lambda: unseen_total(tray) == 0, what="the open page to see the failure")
        wait_until(lambda: tray.state.model().state is IconState.IDLE, what="the tray to follow")


def test_a_dead_service_shows_as_an_error_and_can_be_restarted(tray_in_process: Any) -> None:
    tray, _ = tray_in_process
    assert "Restart service" not in [e.text for e in tray.menu_entries()]
    threading.Thread(target=tray._watch_service, daemon=True).start()
    tray.service.request_stop()  # the service ends without the user quitting
    wait_until(lambda: tray.state.service_down, what="the tray to notice")
    assert tray.state.model().state is IconState.ERROR
    assert tray.status_text() == "Service down"
    find(tray.menu_entries(), "Restart service").activate()
    assert tray.service.alive and not tray.state.service_down
    assert tray.service.daemon is not None
    assert tray.state.model().state is IconState.IDLE


def test_a_notification_names_a_signal_death_as_the_cli_does() -> None:
    from aios.tray import exit_note

    assert exit_note({"exit_code": -9, "exit_signal": "SIGKILL"}) == " (SIGKILL)"
    assert exit_note({"exit_code": 3, "exit_signal": None}) == " (exit 3)"
    assert exit_note({"exit_code": 0, "exit_signal": None}) == ""
    assert exit_note({"exit_code": None}) == ""
