"""The tray on a desktop with a StatusNotifierItem host: Xvfb, a D-Bus session bus,
xfce4-panel's Status Tray plugin as the host, and dunst as the notification daemon.

The tests speak to AIOS over D-Bus exactly as a panel does: find the item through the
watcher, read its properties and its dbusmenu layout, send ``Event(id, "clicked")`` and
``Activate``. What the panel itself drew is checked on the screen.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aios.desktop.icon import BRAND, IconModel, IconState, draw
from tests.browser import browser, signed_in_page
from tests.desktop import (
    Obj,
    Session,
    call,
    dunst,
    get_property,
    run_async,
    screenshot,
    session,
    start_aios,
    xfce_panel,
    xvfb,
)
from tests.helpers import (
    DaemonProcess,
    fake_agents,
    pids_alive,
    require_tool,
    wait_until,
    write_config,
)

__all__ = ["browser"]  # the fixture (a real Chromium), imported so pytest finds it here

pytestmark = [
    pytest.mark.daemon,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="D-Bus desktop tests"),
]

WATCHER = Obj(
    "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"
)
PANEL_HEIGHT = 28


@dataclass
class Desktop:
    session: Session
    notifications: Path  # what dunst showed, one "appname|summary|body" line each


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desktop]:
    root = tmp_path_factory.mktemp("desktop")
    record = root / "notifications.txt"
    record.touch()
    with (
        xvfb() as (display, _server),
        session(display, root) as bus,
        xfce_panel(bus),
        dunst(bus, record),
    ):
        yield Desktop(bus, record)


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A stand-in browser that records what it was asked to open (a real one is not the point)."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    script.chmod(0o755)
    return {"BROWSER": str(script)}, opened


def item_of(desktop: Desktop, tray: DaemonProcess) -> Obj:
    """Our item as the watcher lists it (``<bus name>/StatusNotifierItem``), once registered."""
    name = f"org.kde.StatusNotifierItem-{tray.proc.pid}-1"

    def registered() -> str | None:
        items = get_property(desktop.session.bus, WATCHER, "RegisteredStatusNotifierItems")
        return next((i for i in items if i.startswith(name)), None)

    entry = wait_until(registered, timeout=15, what="the item to register with the watcher")
    bus_name, _, path = entry.partition("/")
    return Obj(bus_name, "/" + path, "org.kde.StatusNotifierItem")


def layout(desktop: Desktop, menu: Obj) -> list[Any]:
    """``GetLayout(0, -1, [])`` as the panel asks it: ``[id, props, children]`` of the root."""
    revision, root = call(desktop.session.bus, menu, "GetLayout", "iias", [0, -1, []])
    assert revision >= 1
    return list(root)


def entries(node: list[Any]) -> list[tuple[int, str, dict[str, Any], list[Any]]]:
    """``(id, label, props, children)`` of each child of a layout node; separators as "-"."""
    out = []
    for child in node[2]:
        ident, props, children = child.value
        values = {k: v.value for k, v in props.items()}
        label = "-" if values.get("type") == "separator" else values.get("label", "")
        out.append((ident, label, values, children and [ident, props, children]))
    return out


def by_label(node: list[Any], label: str) -> tuple[int, dict[str, Any], list[Any]]:
    for ident, text, props, children in entries(node):
        if text == label:
            return ident, props, children
    raise AssertionError(f"no {label!r} in {[e[1] for e in entries(node)]}")


def click(desktop: Desktop, menu: Obj, ident: int) -> None:
    from dbus_fast import Variant

    call(desktop.session.bus, menu, "Event", "isvu", [ident, "clicked", Variant("i", 0), 0])


def test_item_registers_with_its_menu_and_quit_and_launch_work_over_dbus(
    desktop: Desktop, home: Path, tmp_path: Path, stand_in: tuple[dict[str, str], Path]
) -> None:
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    env, opened = stand_in
    log = tmp_path / "aios.err"
    tray = start_aios(home, {**desktop.session.env, **env}, log)
    try:
        item = item_of(desktop, tray)
        assert "tray: StatusNotifierItem over D-Bus; notifications over D-Bus" in log.read_text()
        bus = desktop.session.bus
        assert get_property(bus, item, "Id") == "aios"
        assert get_property(bus, item, "Status") == "Active"
        assert get_property(bus, item, "ItemIsMenu") is False
        tooltip = get_property(bus, item, "ToolTip")
        assert tooltip[2] == "AIOS — idle"
        sizes = [(w, h, len(data)) for w, h, data in get_property(bus, item, "IconPixmap")]
        assert (22, 22, 22 * 22 * 4) in sizes

        # The panel drew the icon: brand blue in the panel's strip of the screen.
        def panel_shows_icon() -> bool:
            strip = screenshot(desktop.session.display, (0, 0, 800, PANEL_HEIGHT))
            colours = strip.getcolors(800 * PANEL_HEIGHT) or []
            return any(c == BRAND[:3] and n >= 20 for n, c in colours)

        wait_until(panel_shows_icon, what="xfce4-panel to draw the icon")

        menu = Obj(item.dest, get_property(bus, item, "Menu"), "com.canonical.dbusmenu")
        root = layout(desktop, menu)
        labels = [label for _, label, _, _ in entries(root)]
        assert labels == [
            "Open Dashboard",
            "Idle",
            "-",
            "Recent runs",
            "Launch",
            "Stop all runs",
            "-",
            "Start at login",
            "Quit",
        ]
        _, status, _ = by_label(root, "Idle")
        assert status["enabled"] is False
        _, autostart, _ = by_label(root, "Start at login")
        assert autostart["toggle-type"] == "checkmark" and autostart["toggle-state"] == 0
        _, launch, launch_node = by_label(root, "Launch")
        assert launch["children-display"] == "submenu"
        launchers = [label for _, label, _, _ in entries(launch_node)]
        assert "sleeper" in launchers and "Command" in launchers

        # Launch ▸ sleeper, as the panel sends it: the dashboard opens on the launch form.
        sleeper, _, _ = by_label(launch_node, "sleeper")
        assert call(bus, menu, "AboutToShow", "i", [0]) in ([True], [False])
        click(desktop, menu, sleeper)
        wait_until(opened.exists, what="the browser to be asked")
        page = Path(opened.read_text().splitlines()[-1].removeprefix("file://"))
        assert "name='next' value='/?agent=sleeper#launch'" in page.read_text()

        # A left click on the icon (Activate) opens the dashboard.
        call(bus, item, "Activate", "ii", [0, 0])
        wait_until(lambda: len(opened.read_text().splitlines()) == 2, what="a second page")

        # A run shows in the menu and the tooltip; Quit stops it and AIOS.
        run = tray.client.request("POST", "/api/runs", {"agent": "sleeper"})
        pid = wait_until(
            lambda: tray.client.request("GET", f"/api/runs/{run['id']}")["pid"], what="agent pid"
        )
        wait_until(
            lambda: get_property(bus, item, "ToolTip")[2] == "AIOS — 1 running",
            what="the tooltip to follow",
        )
        root = layout(desktop, menu)
        assert by_label(root, "1 running")
        _, stop_all, _ = by_label(root, "Stop all runs")
        assert stop_all["enabled"] is True
        quit_id, _, _ = by_label(root, "Quit")
        click(desktop, menu, quit_id)
        assert tray.finish(30) == 0, log.read_text()
        assert not tray.runtime_file.exists()
        assert pids_alive([pid]) == []
        assert "Traceback" not in log.read_text()
    finally:
        tray.close()


def test_a_finished_run_is_a_notification_the_daemon_shows(
    desktop: Desktop, home: Path, tmp_path: Path, stand_in: tuple[dict[str, str], Path]
) -> None:
    env, opened = stand_in
    log = tmp_path / "aios.err"
    tray = start_aios(home, {**desktop.session.env, **env}, log)
    try:
        item_of(desktop, tray)
        run = tray.client.request("POST", "/api/runs", {"agent": "command", "prompt": "exit 3"})
        line = wait_until(
            lambda: next(
                (x for x in desktop.notifications.read_text().splitlines() if "exit 3" in x), None
            ),
            what="dunst to show the notification",
        )
        assert line == "AIOS|command failed (exit 3)|exit 3"
        # Clicking it (dunst's default action) opens the run's page.
        subprocess.run(
            [require_tool("dunstctl"), "action", "0"], env=desktop.session.env, check=True
        )
        wait_until(opened.exists, what="the browser to be asked")
        page = Path(opened.read_text().splitlines()[-1].removeprefix("file://"))
        assert f"name='next' value='/runs/{run['id']}'" in page.read_text()
        tray.client.request("POST", "/api/runs", {"agent": "command", "prompt": "echo done"})
        wait_until(
            lambda: "AIOS|command finished|echo done" in desktop.notifications.read_text(),
            what="dunst to show the second notification",
        )
        assert tray.terminate() == 0
    finally:
        tray.close()


def test_an_agent_that_needs_the_user_is_a_notification(
    desktop: Desktop, home: Path, tmp_path: Path, stand_in: tuple[dict[str, str], Path]
) -> None:
    env, _ = stand_in
    bin_dir = fake_agents(tmp_path / "bin")
    write_config(
        home,
        '[agents.aider]\nenv = { AIOS_FAKE_SCENARIO = "aider-openrouter-login",'
        ' AIOS_FAKE_SPEED = "0" }\n'
        '[agents.crashy]\ncommand = ["aider", "--message={prompt}"]\nformat = "aider"\n'
        'env = { AIOS_FAKE_SCENARIO = "aider-api-down", AIOS_FAKE_SPEED = "0" }\n',
    )
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    tray = start_aios(home, {**desktop.session.env, **env, "PATH": path}, tmp_path / "aios.err")
    try:
        item_of(desktop, tray)
        waiting = tray.client.request("POST", "/api/runs", {"agent": "aider", "prompt": "x"})
        line = wait_until(
            lambda: next(
                (x for x in desktop.notifications.read_text().splitlines() if "needs you" in x),
                None,
            ),
            what="dunst to show that aider waits for a login",
        )
        assert line.startswith("AIOS|aider needs you|aider is waiting for a login")
        tray.client.request("POST", f"/api/runs/{waiting['id']}/stop")
        tray.client.request("POST", "/api/runs", {"agent": "crashy", "prompt": "x"})
        line = wait_until(
            lambda: next(
                (x for x in desktop.notifications.read_text().splitlines() if "crashy" in x),
                None,
            ),
            what="dunst to show the failure that exit 0 hid",
        )
        # Failed although it exited 0 (no "(exit …)"), with what to do in the body.
        assert line.startswith("AIOS|crashy failed|") and len(line) > len("AIOS|crashy failed|")
        assert tray.terminate() == 0
    finally:
        tray.close()


def test_a_request_for_approval_is_a_notification_and_allowed_from_the_menu(
    desktop: Desktop, home: Path, tmp_path: Path, stand_in: tuple[dict[str, str], Path]
) -> None:
    env, _ = stand_in
    bin_dir = fake_agents(tmp_path / "bin")
    stdin_log = tmp_path / "stdin.jsonl"
    write_config(
        home,
        f'[agents.claude]\napprovals = "ask"\nenv = {{ AIOS_FAKE_STDIN_LOG = "{stdin_log}" }}\n',
    )
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    tray = start_aios(home, {**desktop.session.env, **env, "PATH": path}, tmp_path / "aios.err")
    try:
        item = item_of(desktop, tray)
        run = tray.client.request(
            "POST", "/api/runs", {"agent": "claude", "prompt": "ask: npm test"}
        )
        line = wait_until(
            lambda: next(
                (x for x in desktop.notifications.read_text().splitlines() if " asks|" in x), None
            ),
            what="dunst to show the request",
        )
        assert line == "AIOS|claude asks|claude wants to run Bash: npm test"
        bus = desktop.session.bus
        menu = Obj(item.dest, get_property(bus, item, "Menu"), "com.canonical.dbusmenu")

        def asking() -> list[Any] | None:
            root = layout(desktop, menu)
            return next(
                (n for i, label, p, n in entries(root) if label.startswith("claude wants Bash")),
                None,
            )

        node = wait_until(asking, what="the menu to list the request")
        assert [label for _, label, _, _ in entries(node)] == ["Allow", "Deny", "Open"]
        allow, _, _ = by_label(node, "Allow")
        click(desktop, menu, allow)

        def answered() -> bool:
            lines = stdin_log.read_text().splitlines() if stdin_log.exists() else []
            return any('"behavior": "allow"' in x or '"behavior":"allow"' in x for x in lines)

        wait_until(answered, what="the allow to reach the agent")
        wait_until(lambda: asking() is None, what="the request to leave the menu")
        tray.client.request("POST", f"/api/runs/{run['id']}/done")
        assert tray.terminate() == 0
    finally:
        tray.close()


def status_line(desktop: Desktop, menu: Obj) -> str:
    """The menu's status line as the panel gets it: the disabled entry after Open Dashboard."""
    _, label, props, _ = entries(layout(desktop, menu))[1]
    assert props["enabled"] is False
    return str(label)


def test_menu_and_tooltip_agree_and_a_browser_viewing_the_dashboard_clears_attention(
    desktop: Desktop,
    home: Path,
    tmp_path: Path,
    stand_in: tuple[dict[str, str], Path],
    browser: Any,
) -> None:
    """As the panel sees it: the tooltip and the menu's status line count the same runs (going
    now, failed since you last looked), the 22 px pixmap is drawn at 22 px, and a page of the
    dashboard loaded in Chromium (not through the tray) clears the attention."""
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    env, _ = stand_in
    tray = start_aios(home, {**desktop.session.env, **env}, tmp_path / "aios.err")
    try:
        item = item_of(desktop, tray)
        bus = desktop.session.bus
        menu = Obj(item.dest, get_property(bus, item, "Menu"), "com.canonical.dbusmenu")
        client = tray.client
        client.request("POST", "/api/runs", {"agent": "sleeper"})
        for code in (1, 2):
            client.request("POST", "/api/runs", {"agent": "command", "prompt": f"exit {code}"})
        line = "1 running · 2 failed since you last looked"
        wait_until(
            lambda: get_property(bus, item, "ToolTip")[2] == f"AIOS — {line}",
            what=f"the tooltip to say {line!r}",
        )
        assert status_line(desktop, menu) == line
        model = IconModel(IconState.ATTENTION, running=1, failed=2)
        sizes = {w: bytes(data) for w, _, data in get_property(bus, item, "IconPixmap")}
        red, green, blue, alpha = draw(model, 22).split()  # drawn at 22 px, not scaled down
        assert sizes[22] == Image.merge("RGBA", (alpha, red, green, blue)).tobytes()
        assert client.request("GET", "/api/status")["unseen"]["failed"] == 2

        with signed_in_page(browser, tray.port, tray.info.token):
            wait_until(
                lambda: get_property(bus, item, "ToolTip")[2] == "AIOS — 1 running",
                what="the tooltip to drop the failures once the page was seen",
            )
        assert status_line(desktop, menu) == "1 running"
        assert client.request("GET", "/api/status")["unseen"]["total"] == 0
        assert tray.terminate() == 0
    finally:
        tray.close()


def test_a_full_send_buffer_waits_instead_of_ending_the_connection(desktop: Desktop) -> None:
    """The item's bus (``aios.desktop.sni.patient_writes``): when the bus daemon stops reading, our
    sends fill the socket's buffer; dbus-fast alone would end the connection on that EAGAIN, and the
    tray would quit. Here the writes wait, and everything arrives once the daemon reads again."""
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    from aios.desktop.sni import patient_writes

    session_bus = desktop.session

    async def burst() -> None:
        bus = await MessageBus(bus_address=session_bus.bus).connect()
        patient_writes(bus)
        writer: Any = getattr(bus, "_writer")  # noqa: B009 - what dbus-fast writes with
        payload = b"x" * 60_000
        session_bus.bus_daemon.send_signal(signal.SIGSTOP)
        try:
            for _ in range(60):  # 3.6 MB: far more than a socket's buffer holds
                bus.send(Message.new_signal("/test", "test.Burst", "Chunk", "ay", [payload]))
            deadline = asyncio.get_running_loop().time() + 10
            # Until the socket is full (the writer holds a message it could not finish) or,
            # without the fix, the connection is gone.
            while bus.connected and not (writer.buf is not None and writer.messages):
                assert asyncio.get_running_loop().time() < deadline, "the buffer never filled"
                await asyncio.sleep(0.01)
            assert bus.connected, "a full send buffer ended the connection"
        finally:
            session_bus.bus_daemon.send_signal(signal.SIGCONT)
        reply = await asyncio.wait_for(
            bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="GetId",
                )
            ),
            30,
        )
        assert reply is not None and reply.message_type == MessageType.METHOD_RETURN
        assert not writer.messages and writer.buf is None  # all 60 went out
        bus.disconnect()

    run_async(burst)
