"""The tray under a real X server (Xvfb) with a real tray host (trayer), owning a real daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.paths import Paths
from tests.helpers import (
    DaemonProcess,
    aios_env,
    pids_alive,
    require_tool,
    wait_until,
    write_config,
)

pytestmark = [
    pytest.mark.daemon,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 tray tests"),
]


@pytest.fixture(scope="module")
def xdisplay() -> Iterator[str]:
    """A private Xvfb display with trayer docked at the top, as a desktop panel would be."""
    xvfb = require_tool("Xvfb")
    trayer = require_tool("trayer")
    require_tool("xwininfo")
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        display = f":{pipe.readline().strip()}"
    env = {**os.environ, "DISPLAY": display}
    host = subprocess.Popen(
        [trayer, "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "24"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: "panel" in tree(display), what="trayer to appear")
    wait_until(lambda: tray_selection_owned(display), what="trayer to own the tray selection")
    try:
        yield display
    finally:
        host.terminate()
        host.wait(10)
        server.terminate()
        server.wait(10)


def tray_selection_owned(display: str) -> bool:
    from Xlib import X
    from Xlib import display as xdisplay_module

    conn = xdisplay_module.Display(display)
    try:
        atom = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
        return bool(conn.get_selection_owner(atom) != X.NONE)
    finally:
        conn.close()


def tree(display: str) -> str:
    return subprocess.run(
        ["xwininfo", "-root", "-tree"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def docked(display: str) -> bool:
    """Our icon window is a descendant of trayer's panel window."""
    lines = tree(display).splitlines()
    for i, line in enumerate(lines):
        if '"panel"' in line:
            depth = len(line) - len(line.lstrip())
            for inner in lines[i + 1 :]:
                if len(inner) - len(inner.lstrip()) <= depth:
                    break
                if "aiosSystemTrayIcon" in inner:
                    return True
    return False


def start_tray(home: Path, display: str | None) -> DaemonProcess:
    env = aios_env(home)
    if display is not None:
        env["DISPLAY"] = display
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios", "--no-browser"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("AIOS_PORT:"), (line, proc.stderr.read() if proc.stderr else "")
    return DaemonProcess(home, proc, int(line.split(":")[1]), line.strip())


def test_tray_docks_serves_and_sigterm_leaves_nothing(
    xdisplay: str, home: Path, tmp_path: Path
) -> None:
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    tray = start_tray(home, xdisplay)
    try:
        try:
            wait_until(lambda: docked(xdisplay), timeout=20, what="the icon to dock in trayer")
        except AssertionError:
            print(tree(xdisplay))
            raise
        assert tray.client.request("GET", "/api/status")["pid"] == tray.proc.pid
        run = tray.client.request("POST", "/api/runs", {"agent": "sleeper"})
        pid = wait_until(
            lambda: tray.client.request("GET", f"/api/runs/{run['id']}")["pid"], what="agent pid"
        )
        tray.proc.send_signal(signal.SIGTERM)
        assert tray.finish(30) == 0, tray.err
        assert not tray.runtime_file.exists()
        assert pids_alive([pid]) == []
        assert not docked(xdisplay)
        assert "Traceback" not in tray.err
    finally:
        tray.close()


def test_no_display_runs_headless_and_says_why(home: Path) -> None:
    tray = start_tray(home, None)
    try:
        assert tray.client.request("GET", "/api/status")["pid"] == tray.proc.pid
        assert tray.terminate() == 0
        assert "running headless: no display" in tray.err
    finally:
        tray.close()


@pytest.fixture
def tray_in_process(
    xdisplay: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A Tray object with its real service and the real pystray menu, without the icon loop."""
    monkeypatch.setenv("DISPLAY", xdisplay)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    fake_browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(fake_browser))
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    from aios.tray import Tray, load_pystray

    tray = Tray(
        Paths.from_env({"AIOS_HOME": str(home)}), open_browser=False, pystray=load_pystray()
    )
    tray.service.start()
    tray._follow_service()
    try:
        yield tray, opened
    finally:
        tray.shutdown()


def item(menu: Any, text: str) -> Any:
    for entry in menu.items:
        if entry.text == text:
            return entry
    raise AssertionError(f"no menu item {text!r} in {[e.text for e in menu.items]}")


def test_menu_actions_against_the_running_service(tray_in_process: Any) -> None:
    tray, opened = tray_in_process
    menu = tray.menu()
    assert item(menu, "Open Dashboard").default
    item(menu, "Open Dashboard")(None)
    wait_until(opened.exists, what="the browser to be asked")
    page = Path(opened.read_text().strip().removeprefix("file://"))
    assert "/login?token=" in page.read_text()

    launch = item(menu, "Launch").submenu
    names = [e.text for e in launch.items]
    assert "sleeper" in names and "Command" in names
    item(launch, "sleeper")(None)
    assert (
        "next=%2F%3Fagent%3Dsleeper"
        in Path(opened.read_text().splitlines()[-1].removeprefix("file://")).read_text()
    )

    daemon = tray.service.daemon
    run = tray.service.submit(daemon.launch("sleeper")).result(10)
    wait_until(lambda: tray.state.running == 1, what="the tray to see the run")
    assert "1 running" in tray.status_text()
    assert item(tray.menu(), "Recent runs").submenu.items[0].text.startswith("sleeper")
    item(tray.menu(), "Stop all runs")(None)
    wait_until(
        lambda: tray.service.submit(daemon.get_run(run.id)).result(5).state.value == "stopped",
        what="the run to stop",
    )

    autostart = item(tray.menu(), "Start at login")
    assert not autostart.checked
    autostart(None)
    assert item(tray.menu(), "Start at login").checked
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "aios.desktop"
    assert entry.exists()
    item(tray.menu(), "Start at login")(None)
    assert not entry.exists()

    item(tray.menu(), "Quit")(None)  # no icon loop here: quitting leaves it to shutdown()


def test_a_failed_run_draws_attention_until_the_dashboard_is_opened(tray_in_process: Any) -> None:
    from aios.icon import IconState

    tray, _ = tray_in_process
    daemon = tray.service.daemon
    tray.service.submit(daemon.launch("command", "exit 4")).result(10)
    wait_until(lambda: tray.state.model().state is IconState.ATTENTION, what="attention")
    assert tray.state.model().failed == 1
    tray.open_dashboard()
    assert tray.state.model().state is IconState.IDLE


def test_a_dead_service_shows_as_an_error_and_can_be_restarted(tray_in_process: Any) -> None:
    import threading

    from aios.icon import IconState

    tray, _ = tray_in_process
    threading.Thread(target=tray._watch_service, daemon=True).start()
    tray.service.request_stop()  # the service ends without the user quitting
    wait_until(lambda: tray.state.service_down, what="the tray to notice")
    assert tray.state.model().state is IconState.ERROR
    assert tray.status_text() == "Service stopped"
    assert item(tray.menu(), "Restart service").visible
    item(tray.menu(), "Restart service")(None)
    assert tray.service.alive and not tray.state.service_down
    assert tray.service.daemon is not None
    assert tray.state.model().state is IconState.IDLE
