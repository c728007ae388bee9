"""Desktop notifications: ``notify(title, body)``, with optional buttons, from any thread.

On Linux and the BSDs they go to the freedesktop notification service
(``org.freedesktop.Notifications`` on the session bus: GNOME Shell, Plasma, xfce4-notifyd, dunst,
mako...), which works whatever the tray backend is, even where there is no tray menu. Elsewhere
pystray's icon shows them (Windows balloons, macOS notifications). With neither, they are dropped.

Spec: the freedesktop Desktop Notifications Specification 1.2 (``Notify``, ``ActionInvoked``,
``NotificationClosed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

log = logging.getLogger("aios.desktop.notifier")

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
CALL_TIMEOUT = 5.0  # a notification service that does not answer in this long is broken
CLOSE_TIMEOUT = 1.0
IMAGE_SIZE = 48


@dataclass(frozen=True)
class Action:
    """A button on a notification; ``key="default"`` is a click on the notification itself."""

    key: str
    label: str
    run: Callable[[], None]


class Notifier(Protocol):
    def notify(self, title: str, body: str, actions: Sequence[Action] = ()) -> object: ...

    def close(self) -> None: ...


class NoNotifier:
    """Where nothing can show a notification."""

    def notify(self, title: str, body: str, actions: Sequence[Action] = ()) -> None:
        log.info("notification (not shown): %s: %s", title, body)

    def close(self) -> None:
        pass


class IconNotifier:
    """pystray's own notifications (Windows, macOS); they have no buttons."""

    def __init__(self, icon: Callable[[], Any]) -> None:
        self._icon = icon

    def notify(self, title: str, body: str, actions: Sequence[Action] = ()) -> None:
        icon = self._icon()
        if icon is not None:
            try:
                icon.notify(body, title)
            except Exception:
                log.exception("showing a notification failed")

    def close(self) -> None:
        pass


class DesktopNotifier:
    """freedesktop notifications over the session bus, sent from a thread of its own.

    ``notify`` never waits: the call is queued on the notifier's loop, which connects to the bus
    on first use (and again after losing it). It returns a future with the id the service gave,
    which tests and callers that care can wait for.
    """

    def __init__(self, app_name: str = "AIOS", image: Image.Image | None = None) -> None:
        self.app_name = app_name
        self._image = _image_data(image) if image is not None else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bus: Any = None
        self._actions: dict[int, dict[str, Callable[[], None]]] = {}
        self._guard = threading.Lock()

    def notify(self, title: str, body: str, actions: Sequence[Action] = ()) -> Future[int]:
        loop = self._ensure_loop()
        sent = asyncio.run_coroutine_threadsafe(self._send(title, body, tuple(actions)), loop)
        sent.add_done_callback(_log_failure)
        return sent

    def server_information(self) -> Future[list[str]]:
        """``[name, vendor, version, spec_version]`` of the running notification service."""
        return asyncio.run_coroutine_threadsafe(self._server_information(), self._ensure_loop())

    def close(self) -> None:
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._shutdown, loop)
        thread.join(CLOSE_TIMEOUT)

    def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._bus is not None:
            with contextlib.suppress(Exception):
                self._bus.disconnect()
            self._bus = None
        loop.stop()

    # -- on the notifier's loop -----------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_run_forever, args=(loop,), name="aios-notifier", daemon=True
                )
                self._thread.start()
                self._loop = loop
            return self._loop

    async def _connect(self) -> Any:
        from dbus_fast import BusType, Message  # noqa: PLC0415 - Linux only
        from dbus_fast.aio import MessageBus  # noqa: PLC0415

        if self._bus is not None and self._bus.connected:
            return self._bus
        bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SESSION).connect(), CALL_TIMEOUT)
        for member in ("ActionInvoked", "NotificationClosed"):
            rule = f"type='signal',interface='{SERVICE}',member='{member}'"
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
        bus.add_message_handler(self._on_signal)
        self._bus = bus
        return bus

    async def _send(self, title: str, body: str, actions: tuple[Action, ...]) -> int:
        from dbus_fast import Message, MessageType, Variant  # noqa: PLC0415

        bus = await self._connect()
        hints: dict[str, Variant] = {"urgency": Variant("y", 1)}
        if self._image is not None:
            hints["image-data"] = Variant("(iiibiiay)", self._image)
        pairs = [part for a in actions for part in (a.key, a.label)]
        reply = await asyncio.wait_for(
            bus.call(
                Message(
                    destination=SERVICE,
                    path=PATH,
                    interface=SERVICE,
                    member="Notify",
                    signature="susssasa{sv}i",
                    body=[self.app_name, 0, "", title, body, pairs, hints, -1],
                )
            ),
            CALL_TIMEOUT,
        )
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            error = reply.body if reply is not None else "no reply"
            raise NotificationError(f"the notification service refused: {error}")
        ident = int(reply.body[0])
        if actions:
            self._actions[ident] = {a.key: a.run for a in actions}
        return ident

    async def _server_information(self) -> list[str]:
        from dbus_fast import Message, MessageType  # noqa: PLC0415

        bus = await self._connect()
        reply = await asyncio.wait_for(
            bus.call(
                Message(
                    destination=SERVICE,
                    path=PATH,
                    interface=SERVICE,
                    member="GetServerInformation",
                )
            ),
            CALL_TIMEOUT,
        )
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            raise NotificationError("no notification service answers on the session bus")
        return [str(part) for part in reply.body]

    def _on_signal(self, message: Any) -> None:
        if message.interface != SERVICE:
            return
        if message.member == "ActionInvoked":
            ident, key = message.body
            run = self._actions.pop(int(ident), {}).get(str(key))
            if run is not None:
                # Actions may wait on the service; the notifier's loop must not.
                threading.Thread(target=run, name="aios-notification-action", daemon=True).start()
        elif message.member == "NotificationClosed":
            self._actions.pop(int(message.body[0]), None)


class NotificationError(Exception):
    """The notification service refused or did not answer."""


def _log_failure(sent: Future[int]) -> None:
    """Nobody waits for a notification: a failure is logged here or nowhere."""
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("a notification was not shown: %s", sent.exception())


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.close()


def _image_data(image: Image.Image) -> list[Any]:
    """The ``image-data`` hint: ``(iiibiiay)`` width, height, rowstride, alpha, bits, channels."""
    rgba = image.convert("RGBA").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return [IMAGE_SIZE, IMAGE_SIZE, IMAGE_SIZE * 4, True, 8, 4, rgba.tobytes()]
