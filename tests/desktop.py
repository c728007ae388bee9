"""A real desktop for the tray tests: Xvfb, a D-Bus session bus, tray hosts, a notification
daemon, all from Debian, each started on its own and stopped by the fixture that started it.

- ``trayer``: an X (XEmbed) system tray, what the plain X backend docks into.
- ``xfce4-panel`` with its Status Tray plugin: a StatusNotifierItem host (its plugin owns
  ``org.kde.StatusNotifierWatcher``) that also draws the item's menu from dbusmenu.
- ``dunst``: a freedesktop notification daemon; a rule runs a script that records every
  notification it shows, so a test can see what the daemon got.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from tests.helpers import DaemonProcess, aios_env, require_tool, wait_until

PANEL_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="28"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray"/>
  </property>
</channel>
"""

DUNST_CONFIG = """[global]
    monitor = 0
    follow = none
    timeout = 60
[record]
    appname = "*"
    script = {script}
"""


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Stop a process this module started (and let it reap its own children)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # in case a test stopped it
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@contextlib.contextmanager
def xvfb() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private X server; yields its display name and process (tests may SIGSTOP it)."""
    server_bin = require_tool("Xvfb")
    read, write = os.pipe()
    server = subprocess.Popen(
        [server_bin, "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        display = f":{pipe.readline().strip()}"
    try:
        yield display, server
    finally:
        stop(server)


@contextlib.contextmanager
def trayer(display: str) -> Iterator[subprocess.Popen[bytes]]:
    """trayer docked at the top right, as a desktop panel's tray would be.

    On a loaded machine trayer now and then exits at start (seen: before it owned the tray
    selection); a panel would be restarted by the session, and so is trayer here, twice at most.
    """
    host = _start_trayer(display)
    try:
        for _ in range(3):
            wait_until(_owned_or_gone(display, host), 30, "trayer to own the tray selection")
            if host.poll() is None:
                break
            host = _start_trayer(display)
        assert x_tray_owned(display), "trayer never owned the tray selection"
        yield host
    finally:
        stop(host)


def _owned_or_gone(display: str, host: subprocess.Popen[bytes]) -> Callable[[], bool]:
    return lambda: host.poll() is not None or x_tray_owned(display)


def _start_trayer(display: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            require_tool("trayer"),
            *("--edge", "top", "--align", "right", "--widthtype", "request", "--height", "24"),
        ],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class Session:
    """A desktop session: display, session bus and the environment its programs share."""

    display: str
    bus: str
    env: dict[str, str]
    bus_daemon: subprocess.Popen[bytes]  # tests may SIGSTOP it


@contextlib.contextmanager
def session(display: str, root: Path) -> Iterator[Session]:
    """A D-Bus session bus for ``display``, with XDG dirs of its own under ``root``.

    Services the bus starts on demand (xfconfd for the panel) inherit the bus's environment,
    which is why the config dirs are set on the bus itself.
    """
    require_tool("dbus-daemon")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIOS_", "DBUS_"))},
        "DISPLAY": display,
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CONFIG_DIRS": str(root / "config-dirs"),  # no system-wide panel defaults
        "XDG_CACHE_HOME": str(root / "cache"),
        "XDG_DATA_HOME": str(root / "data"),
        "NO_AT_BRIDGE": "1",  # no accessibility bus to start for GTK
    }
    env.pop("WAYLAND_DISPLAY", None)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    read, write = os.pipe()
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", f"--print-address={write}"],
        pass_fds=(write,),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        address = pipe.readline().strip()
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    try:
        yield Session(display, address, env, daemon)
    finally:
        stop(daemon)


@contextlib.contextmanager
def xfce_panel(desktop: Session) -> Iterator[subprocess.Popen[bytes]]:
    """xfce4-panel with only its Status Tray plugin, along the top of the screen."""
    panel_bin = require_tool("xfce4-panel")
    config = Path(desktop.env["XDG_CONFIG_HOME"]) / "xfce4/xfconf/xfce-perchannel-xml"
    config.mkdir(parents=True, exist_ok=True)
    (config / "xfce4-panel.xml").write_text(PANEL_CONFIG)
    panel = subprocess.Popen(
        [panel_bin, "--disable-wm-check"],  # Xvfb has no window manager; none is needed
        env=desktop.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: name_has_owner(desktop.bus, "org.kde.StatusNotifierWatcher"),
            timeout=30,
            what="xfce4-panel's tray plugin to own org.kde.StatusNotifierWatcher",
        )
        yield panel
    finally:
        stop(panel)


@contextlib.contextmanager
def dunst(desktop: Session, record: Path) -> Iterator[subprocess.Popen[bytes]]:
    """dunst, recording ``appname|summary|body`` of each notification it shows to ``record``."""
    dunst_bin = require_tool("dunst")
    script = record.with_suffix(".sh")
    script.write_text(f'#!/bin/sh\nprintf "%s|%s|%s\\n" "$1" "$2" "$3" >> {record}\n')
    script.chmod(0o755)
    config = record.with_suffix(".dunstrc")
    config.write_text(DUNST_CONFIG.format(script=script))
    daemon = subprocess.Popen(
        [dunst_bin, "-config", str(config)],
        env=desktop.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: name_has_owner(desktop.bus, "org.freedesktop.Notifications"),
            what="dunst to own org.freedesktop.Notifications",
        )
        yield daemon
    finally:
        stop(daemon)


# -- D-Bus, as a panel speaks it ----------------------------------------------------------------


@dataclass(frozen=True)
class Obj:
    """An object on the bus: who owns it, where, and which interface of it."""

    dest: str
    path: str
    iface: str


BUS = Obj("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def call(bus: str, obj: Obj, member: str, sig: str = "", body: list[Any] | None = None) -> Any:
    """One method call on ``bus``; returns the reply's body, raises on an error reply."""
    return run_async(lambda: asyncio.wait_for(_call(bus, obj, member, sig, body or []), 10))


def run_async(coroutine: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """``asyncio.run``, on a thread of its own where this one runs a loop already (Playwright's
    sync API keeps one running while a test has a browser open)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine())).result()


async def _call(address: str, obj: Obj, member: str, sig: str, body: list[Any]) -> list[Any]:
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_address=address).connect()
    try:
        message = Message(
            destination=obj.dest,
            path=obj.path,
            interface=obj.iface,
            member=member,
            signature=sig,
            body=body,
        )
        reply = await bus.call(message)
    finally:
        bus.disconnect()
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise AssertionError(f"{member} failed: {reply.error_name} {reply.body}")
    return list(reply.body)


def get_property(bus: str, obj: Obj, name: str) -> Any:
    props = Obj(obj.dest, obj.path, "org.freedesktop.DBus.Properties")
    return call(bus, props, "Get", "ss", [obj.iface, name])[0].value


def name_has_owner(bus: str, name: str) -> bool:
    return bool(call(bus, BUS, "NameHasOwner", "s", [name])[0])


# -- X ---------------------------------------------------------------------------------------------


def x_tray_owned(display: str) -> bool:
    from Xlib import X
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        atom = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
        return bool(conn.get_selection_owner(atom) != X.NONE)
    finally:
        conn.close()


def screenshot(display: str, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """The screen (or ``box`` of it) as the X server has it."""
    from Xlib import X
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        root = conn.screen().root
        geometry = root.get_geometry()
        x, y, w, h = box or (0, 0, geometry.width, geometry.height)
        raw = root.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF)
        return Image.frombytes("RGB", (w, h), raw.data, "raw", "BGRX")
    finally:
        conn.close()


def start_aios(home: Path, env: dict[str, str], log: Path) -> DaemonProcess:
    """``aios --no-browser`` in a desktop session; stderr goes to ``log`` (read while it runs)."""
    full = aios_env(home)
    # Only the session given: never the bus of whoever runs the tests.
    full.pop("DBUS_SESSION_BUS_ADDRESS", None)
    full.pop("XDG_RUNTIME_DIR", None)
    full.update({k: v for k, v in env.items() if not k.startswith("AIOS_")})
    full["AIOS_HOME"] = str(home)
    full["XDG_CONFIG_HOME"] = str(home / "xdg")  # autostart entries stay in the test's home
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aios", "--no-browser"],
            env=full,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("AIOS_PORT:"), (line, log.read_text())
    return DaemonProcess(home, proc, int(line.split(":")[1]), line.strip())
