"""A pystray backend that is a StatusNotifierItem: the tray icon of KDE Plasma, XFCE, Cinnamon,
LXQt, MATE, Budgie and GNOME with the AppIndicator extension, spoken over D-Bus with dbus-fast.

Why a backend of our own: pystray's menu on Linux comes through GTK (its ``appindicator`` and
``gtk`` backends), which needs PyGObject, and PyGObject in a venv is built from source against
Debian's dev packages (a compiler, gobject-introspection and cairo headers). The protocol
underneath is two small D-Bus interfaces, so this backend speaks them with dbus-fast (pure Python
wheels, no GTK in the process) and keeps pystray's ``Icon``/``Menu`` API: the tray code is the
same on every backend. It also does what AppIndicator cannot: a left click runs the default
action (``Activate``) instead of opening the menu.

Spec: freedesktop StatusNotifierItem (the ``org.kde.StatusNotifierItem`` interface at
``/StatusNotifierItem``, registered with ``org.kde.StatusNotifierWatcher``) and
``com.canonical.dbusmenu`` for the menu (``aios.desktop.dbusmenu``).

Threads: :meth:`SniIcon.run` runs an asyncio loop with the bus connection; every pystray call
from another thread (new icon, title, menu, stop) is handed to that loop and returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Annotated, Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal
from PIL import Image

from aios.desktop.dbusmenu import DBusMenu
from aios.desktop.icon import at_size
from aios.desktop.loader import import_pystray

# pystray's base class for backends; imported through import_pystray, because a plain
# `import pystray` fails where none of pystray's own backends can load (Wayland without X).
_base: Any = import_pystray()._base

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
ITEM_PATH = "/StatusNotifierItem"
MENU_PATH = "/MenuBar"
PIXMAP_SIZES = (16, 22, 24, 32, 48, 64)  # hosts pick the nearest; these cover 1x and 2x panels
CONNECT_TIMEOUT = 5.0

Pixmaps = Annotated[list[Any], DBusSignature("a(iiay)")]
Void = Annotated[None, DBusSignature("")]  # dbus-fast reads signatures from annotations


def pixmaps(image: Image.Image | None) -> list[list[Any]]:
    """``a(iiay)``: ARGB32 in network byte order, one per size, as the spec wants."""
    if image is None:
        return []
    out: list[list[Any]] = []
    for size in PIXMAP_SIZES:
        scaled = at_size(image, size)  # drawn at each size: a scaled-down badge is a smudge
        red, green, blue, alpha = scaled.split()
        # Pillow has no ARGB packer: reorder the bands, then take them as four bytes a pixel.
        argb = Image.merge("RGBA", (alpha, red, green, blue)).tobytes()
        out.append([size, size, argb])
    return out


class StatusNotifierItem(ServiceInterface):
    def __init__(self, icon: SniIcon) -> None:
        super().__init__("org.kde.StatusNotifierItem")
        self._icon = icon
        self.status = "Passive"
        self.pixmaps = pixmaps(icon.icon)

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> DBusStr:
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> DBusStr:
        return str(self._icon.name)

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> DBusStr:
        return str(self._icon.title or self._icon.name)

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> DBusStr:
        return self.status

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> Annotated[int, DBusSignature("i")]:
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def IconPixmap(self) -> Pixmaps:
        return self.pixmaps

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconPixmap(self) -> Pixmaps:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconPixmap(self) -> Pixmaps:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def AttentionMovieName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> Annotated[list[Any], DBusSignature("(sa(iiay)ss)")]:
        return ["", [], str(self._icon.title or ""), ""]

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> DBusBool:
        return False  # a left click runs Activate: the default action

    @dbus_property(access=PropertyAccess.READ)
    def Menu(self) -> DBusObjectPath:
        return MENU_PATH

    @dbus_method()
    def Activate(
        self, x: Annotated[int, DBusSignature("i")], y: Annotated[int, DBusSignature("i")]
    ) -> Void:
        self._icon.activate_default()

    @dbus_method()
    def SecondaryActivate(
        self, x: Annotated[int, DBusSignature("i")], y: Annotated[int, DBusSignature("i")]
    ) -> Void:
        self._icon.activate_default()

    @dbus_method()
    def ContextMenu(
        self, x: Annotated[int, DBusSignature("i")], y: Annotated[int, DBusSignature("i")]
    ) -> Void:
        # Hosts show the dbusmenu themselves; one that asks us has nothing to show it with.
        return

    @dbus_method()
    def Scroll(self, delta: Annotated[int, DBusSignature("i")], orientation: DBusStr) -> Void:
        return

    @dbus_signal()
    def NewTitle(self) -> Void:
        return None

    @dbus_signal()
    def NewIcon(self) -> Void:
        return None

    @dbus_signal()
    def NewToolTip(self) -> Void:
        return None

    @dbus_signal()
    def NewStatus(self, status: str) -> DBusStr:
        return status


class SniIcon(_base.Icon):  # type: ignore[misc]  # pystray ships no types
    """pystray's ``Icon`` API as a StatusNotifierItem with a dbusmenu menu."""

    HAS_DEFAULT_ACTION = True
    HAS_MENU = True
    HAS_MENU_RADIO = True
    HAS_NOTIFICATION = False  # aios.desktop.notifier sends them over D-Bus for every backend

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._bus: MessageBus | None = None
        self._item: StatusNotifierItem | None = None
        self._dbusmenu: DBusMenu | None = None
        self._stop_requested = threading.Event()
        self._signalled_title = str(self.title or "")  # what the host was last told of
        self.bus_name = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        self.registered = threading.Event()  # the watcher knows us (tests and the log read it)

    # -- pystray's implementation methods (any thread) ------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            if not self._running:
                # pystray's setup thread (not a daemon) waits for this; never leave it waiting.
                self._mark_ready()

    def _run_detached(self) -> None:
        threading.Thread(target=self._run, name="aios-sni", daemon=True).start()

    def _stop(self) -> None:
        self._stop_requested.set()
        self._call(lambda: self._stopped.set() if self._stopped else None)

    def _show(self) -> None:
        self._call(lambda: self._set_status("Active"))

    def _hide(self) -> None:
        self._call(lambda: self._set_status("Passive"))

    def _update_icon(self) -> None:
        image = self.icon
        self._icon_valid = True
        self._call(lambda: self._new_icon(image))

    def _update_title(self) -> None:
        self._call(self._new_title)

    def _update_menu(self) -> None:
        self._call(lambda: self._dbusmenu.refresh() if self._dbusmenu else None)

    def __del__(self) -> None:
        pass  # pystray's hides the icon from the finaliser; the loop is gone by then

    def activate_default(self) -> None:
        """What a left click does: the menu's default item, on a thread of its own."""
        threading.Thread(target=self, name="aios-sni-activate", daemon=True).start()

    # -- the loop ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed in between
                loop.call_soon_threadsafe(fn)

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        connecting = MessageBus(bus_type=BusType.SESSION).connect()
        bus = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        patient_writes(bus)
        self._bus = bus
        self._item = StatusNotifierItem(self)
        self._dbusmenu = DBusMenu(lambda: self.menu, _activate_item(self))
        bus.export(ITEM_PATH, self._item)
        bus.export(MENU_PATH, self._dbusmenu)
        await bus.request_name(self.bus_name)
        await _add_match(bus, f"type='signal',member='NameOwnerChanged',arg0='{WATCHER}'")
        bus.add_message_handler(self._on_message)
        self._loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():
            self._stopped.set()
        self._mark_ready()
        try:
            await self._register()
            # Until stop(), or until the bus goes away (the session is ending): then the loop
            # ends and the tray quits, as it does when the X server goes away.
            ended = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
            stopped = asyncio.ensure_future(self._stopped.wait())
            await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (ended, stopped):
                waiter.cancel()
        finally:
            self._loop = None
            bus.disconnect()

    async def _register(self) -> None:
        """Tell the watcher we exist; again whenever a new watcher appears (a panel restart)."""
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination=WATCHER,
                path=WATCHER_PATH,
                interface=WATCHER,
                member="RegisterStatusNotifierItem",
                signature="s",
                body=[self.bus_name],
            )
        )
        if reply is not None and reply.message_type == MessageType.METHOD_RETURN:
            self.registered.set()
            self._log.info("registered with the StatusNotifierWatcher as %s", self.bus_name)
        else:
            self.registered.clear()
            self._log.info("no StatusNotifierWatcher yet; waiting for one to appear")

    def _on_message(self, message: Message) -> None:
        if (
            message.message_type == MessageType.SIGNAL
            and message.member == "NameOwnerChanged"
            and message.body[0] == WATCHER
        ):
            self.registered.clear()
            if message.body[2]:  # a new owner
                asyncio.get_running_loop().create_task(self._register())

    def _set_status(self, status: str) -> None:
        if self._item is not None and self._item.status != status:
            self._item.status = status
            self._item.NewStatus(status)

    # A host answers each New* signal by fetching every property again, pixmaps and all: signal
    # only real changes (and see _PatientSocket for a burst that fills the socket's buffer).

    def _new_icon(self, image: Image.Image | None) -> None:
        if self._item is not None:
            new = pixmaps(image)
            if new != self._item.pixmaps:
                self._item.pixmaps = new
                self._item.NewIcon()

    def _new_title(self) -> None:
        title = str(self.title or "")
        if self._item is not None and title != self._signalled_title:
            self._signalled_title = title
            self._item.NewTitle()
            self._item.NewToolTip()


class _PatientSocket:
    """The bus's socket as dbus-fast's writer sees it, but a full send buffer means "nothing sent
    yet, wait until writable" instead of an error that ends the connection.

    dbus-fast (5.2) treats EAGAIN on send as fatal (python-dbus-next issue #153, never fixed
    there), so a host that reads slowly while the icon changes - each change makes it fetch
    every property again, ~35 KB of pixmaps - cost us the connection, and the tray quit. Its
    writer already waits for the socket to be writable when a send is short; a send of 0 bytes
    takes that path. ``sendmsg`` (file descriptors, which we never send) is left as it is.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: Any, *flags: int) -> int:
        try:
            return int(self._sock.send(data, *flags))
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def patient_writes(bus: MessageBus) -> None:
    """Make a connected bus wait out a full send buffer instead of disconnecting."""
    writer = getattr(bus, "_writer", None)
    if writer is not None and not isinstance(getattr(writer, "sock", None), _PatientSocket):
        writer.sock = _PatientSocket(writer.sock)


def _activate_item(icon: SniIcon) -> Callable[[Any], None]:
    """pystray menu items are called with the icon (a disabled one does nothing); then the menu
    is re-read, as pystray's own backends do after a click."""

    def activate(item: Any) -> None:
        item(icon)
        icon.update_menu()

    return activate


async def _add_match(bus: MessageBus, rule: str) -> None:
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[rule],
        )
    )
