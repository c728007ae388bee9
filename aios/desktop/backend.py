"""Which tray icon this desktop gets, and what it lacks (said in one line at start-up).

On Linux, in this order:

1. ``sni`` (``aios.desktop.sni``): a StatusNotifierItem host is on the session bus (KDE Plasma,
   XFCE, Cinnamon, LXQt, MATE, Budgie, GNOME with the AppIndicator extension): the full menu, a
   left click opens the dashboard.
2. pystray's ``appindicator`` or ``gtk`` backend, when PyGObject is installed: a menu through GTK.
3. ``xembed`` (``aios.desktop.xembed``): pystray's plain X backend, made robust. No menu: a
   left click opens the dashboard, and everything else is there.

``PYSTRAY_BACKEND`` set by the user wins, as pystray documents. Windows and macOS get pystray's
own backend. Notifications are separate (``aios.desktop.notifier``) and work with every Linux
backend.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from PIL import Image

from aios.desktop.icon import IconModel, draw
from aios.desktop.loader import NoTray, import_pystray

log = logging.getLogger("aios.tray")

WATCHER = "org.kde.StatusNotifierWatcher"
NOTIFICATIONS = "org.freedesktop.Notifications"
PROBE_TIMEOUT = 2.0
POLL = 0.25
WATCHER_GRACE = 2.0  # seconds an X tray waits for a StatusNotifierWatcher to appear beside it
FULL = 64  # px: the picture pystray's backends get and scale to their panel
CARRIER = 16  # px: the picture ours get, which draw it afresh from its model (icon.at_size)


@dataclass(frozen=True)
class Backend:
    name: str
    icon: Any  # a pystray Icon class
    pystray: ModuleType  # for Menu and MenuItem, which every backend shares
    has_menu: bool
    lacks: str  # what the user misses with it, or ""
    # Ours need no particular thread; pystray's want the main one (AppKit and GTK do).
    own_thread: bool = False
    # Ours draw the icon afresh at each size they show (``icon.at_size``) from the model its
    # picture carries; pystray's scale the picture they are given.
    redraws: bool = False

    def picture(self, model: IconModel) -> Image.Image:
        """The icon's picture for this backend. Ours need only the model it carries: drawn at
        the smallest size it costs least, and it never draws a count from 40 px up, the one
        picture that loads Pillow's font and FreeType for good."""
        return draw(model, CARRIER if self.redraws else FULL)

    def describe(self) -> str:
        return f"tray: {self.name}" + (f" ({self.lacks})" if self.lacks else "")


def on_linux() -> bool:
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


def check_display() -> None:
    """Quick: is there any display an icon could show on?"""
    if on_linux() and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NoTray("no display (DISPLAY and WAYLAND_DISPLAY are unset)")


def choose(wait: float = 0.0, cancelled: Callable[[], bool] = lambda: False) -> Backend:
    """The backend for this desktop; on Linux, wait up to ``wait`` s for a tray host to appear.

    At login the panel may start after AIOS (a known race on KDE and XFCE).
    """
    check_display()
    pystray = import_pystray()
    if not on_linux() or os.environ.get("PYSTRAY_BACKEND"):
        return _pystrays(pystray)
    deadline = time.monotonic() + wait
    grace: float | None = None  # set once an X tray is there: the watcher may be just behind
    while True:
        if session_bus_has(WATCHER):
            from aios.desktop.sni import SniIcon  # noqa: PLC0415 - needs dbus-fast, Linux only

            return Backend(
                "StatusNotifierItem over D-Bus", SniIcon, pystray, True, "", True, redraws=True
            )
        now = time.monotonic()
        if grace is None and x_tray_owned():
            # One panel often hosts both (xfce4-panel's tray plugin claims the X tray, then the
            # watcher name): at login, give the one with a menu a moment to catch up, where
            # there is a session bus for it to appear on.
            has_bus = bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS"))
            grace = now + WATCHER_GRACE if has_bus and now < deadline else now
        if (grace is not None and now >= grace) or now >= deadline or cancelled():
            break
        time.sleep(POLL)
    if pystray.Icon.__module__ in ("pystray._appindicator", "pystray._gtk"):
        return _pystrays(pystray)
    if "_aios_import_error" in pystray.__dict__:
        error = pystray.__dict__["_aios_import_error"]
        raise NoTray(
            f"no StatusNotifierItem host on D-Bus and no X display ({type(error).__name__}: "
            f"{error})"
        )
    from aios.desktop.xembed import XEmbedIcon  # noqa: PLC0415 - needs an X display

    return Backend(
        "plain X icon (XEmbed)",
        XEmbedIcon,
        pystray,
        False,
        "no menu: no StatusNotifierItem host is on the session bus; "
        "a left click opens the dashboard, which has everything the menu would",
        True,
        redraws=True,
    )


def _pystrays(pystray: ModuleType) -> Backend:
    icon = pystray.Icon
    name = icon.__module__.rsplit(".", 1)[-1].lstrip("_")
    lacks = []
    if not icon.HAS_MENU:
        lacks.append("no menu")
    if not icon.HAS_DEFAULT_ACTION:
        lacks.append("a left click opens the menu, not the dashboard")
    return Backend(f"pystray {name}", icon, pystray, bool(icon.HAS_MENU), "; ".join(lacks))


def x_tray_owned() -> bool:
    """An X system tray (XEmbed) owns its selection on the default screen."""
    if not os.environ.get("DISPLAY"):
        return False
    try:
        from Xlib import X, display  # noqa: PLC0415
    except ImportError:
        return False
    try:
        conn = display.Display()
    except Exception:  # no X server there
        return False
    try:
        atom = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
        return bool(conn.get_selection_owner(atom) != X.NONE)
    finally:
        conn.close()


def session_bus_has(*names: str, activatable: bool = False) -> bool:
    """Every name has an owner on the session bus (or, with ``activatable``, D-Bus can start it)."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not os.environ.get("XDG_RUNTIME_DIR"):
        return False
    try:
        return asyncio.run(asyncio.wait_for(_bus_has(names, activatable), PROBE_TIMEOUT))
    except Exception:  # no session bus, or dbus-fast missing: the same to us
        log.debug("session bus probe failed", exc_info=True)
        return False


async def _bus_has(names: tuple[str, ...], activatable_ok: bool) -> bool:
    from dbus_fast import BusType, MessageType  # noqa: PLC0415
    from dbus_fast.aio import MessageBus  # noqa: PLC0415

    bus = await MessageBus(bus_type=BusType.SESSION).connect()
    try:
        activatable: list[str] | None = None
        for name in names:
            reply = await bus.call(_dbus_call("NameHasOwner", "s", [name]))
            ok = reply is not None and reply.message_type == MessageType.METHOD_RETURN
            if ok and reply.body[0]:
                continue
            if not activatable_ok:
                return False
            if activatable is None:
                listed = await bus.call(_dbus_call("ListActivatableNames", "", []))
                ok = listed is not None and listed.message_type == MessageType.METHOD_RETURN
                activatable = list(listed.body[0]) if ok and listed is not None else []
            if name not in activatable:
                return False
        return True
    finally:
        bus.disconnect()


def _dbus_call(member: str, signature: str, body: list[Any]) -> Any:
    from dbus_fast import Message  # noqa: PLC0415

    return Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member=member,
        signature=signature,
        body=body,
    )
