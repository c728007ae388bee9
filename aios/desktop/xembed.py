"""pystray's plain X (XEmbed) backend, made safe for an icon that changes often.

pystray 0.19.5's ``pystray._xorg.Icon`` has faults that show in a real tray (issue 13):

1. Every icon change asks the tray host to dock the window again (``_update_icon`` calls
   ``_assert_docked``, which always sends ``SYSTEM_TRAY_REQUEST_DOCK``). A host built on
   GtkSocket (trayer, and others) embeds the already embedded window once more, and after a few
   quick changes the new socket settles at 1 px wide: the icon vanishes.
2. Other threads hand each change to the loop as an X ClientMessage over the same connection and
   then wait, with no timeout, on one queue shared by every caller; the loop makes X round trips
   (``get_selection_owner`` under a server grab, ``get_geometry`` on every draw). When the
   X server stalls, every thread that touches the icon stalls with it, and ``__del__`` joins the
   loop thread without a timeout.
3. It never asks X for button presses, so a click does nothing (pystray issue #151).

:class:`XEmbedIcon` keeps pystray's window, docking and drawing code, and changes how it is
driven:

- Only the loop thread touches the X connection. Other threads queue the change, wake the loop
  through a pipe and return at once; repeated changes of one kind coalesce into the latest.
- The loop waits in ``select()`` with a timeout, so :meth:`stop` ends it even when the X server
  does not answer; whoever waits for the loop chooses how long (``Tray`` waits ``ICON_STOP``).
- Docked or not is known from ``ReparentNotify`` events, and the size from ``ConfigureNotify``,
  so an icon change costs no round trip and never asks to dock again. While not docked it asks
  again with a growing interval: a host that has just started can miss the first request.
- Clicks are selected; the default action runs on a thread of its own, never on the loop.
- The title is set as ``_NET_WM_NAME`` (UTF-8) as well as the Latin-1 ``WM_NAME``.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image
from pystray import _xorg
from Xlib import X

from aios.desktop.icon import at_size

POLL = 0.25  # seconds the loop sleeps at most before looking at the stop flag again
DOCK_RETRY_FIRST = 1.0  # seconds before asking an unresponsive tray host to dock again
DOCK_RETRY_MAX = 8.0

# pystray's implementation methods that other threads call; they are queued for the loop.
_QUEUED = ("_show", "_hide", "_update_icon", "_update_title")
_OPPOSITE = {"_show": "_hide", "_hide": "_show"}


class XEmbedIcon(_xorg.Icon):  # type: ignore[misc]  # pystray ships no types
    HAS_MENU = False
    HAS_MENU_RADIO = False
    HAS_NOTIFICATION = False  # aios.desktop.notifier sends them over D-Bus instead

    def __init__(
        self, name: str, icon: Any = None, title: str | None = None, menu: Any = None, **kw: Any
    ) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pending: dict[str, Callable[[], None]] = {}
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop_ident: int | None = None
        self._want_docked = False
        self._embedded = False
        self._size = (0, 0)
        self._icon_data: Image.Image | None = None  # the picture at the window's size
        self._dock_at = 0.0
        self._dock_interval = DOCK_RETRY_FIRST
        # pystray names the window with the title as a Latin-1 STRING, which cannot hold "—";
        # the loop sets the real title (also as UTF-8) as soon as it starts.
        super().__init__(name, icon, _latin1(title or ""), menu, **kw)
        self._title = title or ""

    # -- what other threads call ------------------------------------------------------------------

    def _rewrite_implementation(self, *methods: Callable[[], None]) -> None:
        """Replace pystray's blocking dispatcher with a queue the loop drains."""
        for method in methods:
            name = method.__name__
            if name in _QUEUED:
                setattr(self, name, self._queued(name, method))
        self._stop = self._request_stop

    def _queued(self, name: str, original: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            if threading.get_ident() == self._loop_ident:
                original()
                return
            with self._pending_lock:
                self._pending.pop(_OPPOSITE.get(name, ""), None)
                self._pending.pop(name, None)  # keep the latest request, in call order
                self._pending[name] = original
            self._wake()

        return call

    def _request_stop(self) -> None:
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # the pipe is full (the loop will wake) or closed
            os.write(self._wake_w, b"\0")

    def __del__(self) -> None:
        # pystray's __del__ stops the loop and joins its thread without a timeout; never here.
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        self._loop_ident = threading.get_ident()
        self._thread = threading.current_thread()
        self._mark_ready()
        try:
            self._update_title()
            self._mainloop()
        except Exception:
            self._log.error("the X icon loop failed", exc_info=True)
        finally:
            self._teardown()

    def _mainloop(self) -> None:
        display = self._display
        while not self._stopping.is_set():
            readable, _, _ = select.select([display, self._wake_r], [], [], self._timeout())
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            self._run_pending()
            self._retry_dock()
            while not self._stopping.is_set() and display.pending_events():
                event = display.next_event()
                if event.type == X.DestroyNotify and event.window == self._window:
                    return
                self._dispatch(event)

    def _timeout(self) -> float:
        if self._want_docked and not self._embedded:
            return max(0.0, min(POLL, self._dock_at - time.monotonic()))
        return POLL

    def _run_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for method in pending.values():
            try:
                method()
            except Exception:
                self._log.error("tray icon update failed", exc_info=True)

    def _dispatch(self, event: Any) -> None:
        kind = event.type
        if kind == X.ReparentNotify and event.window == self._window:
            self._embedded = event.parent != self._display.screen().root
            if not self._embedded:  # the host let go of us (it quit or restarts)
                self._systray_manager = None
                self._dock_at, self._dock_interval = time.monotonic(), DOCK_RETRY_FIRST
        elif kind == X.ConfigureNotify and event.window == self._window:
            self._size = (event.width, event.height)
            self._draw()
        elif kind == X.Expose and event.window == self._window:
            self._draw()
        elif kind == X.ButtonPress and event.window == self._window and event.detail == 1:
            # The default action opens a browser: never on the loop, which must stay free.
            threading.Thread(target=self, name="aios-icon-click", daemon=True).start()
        elif (
            kind == X.DestroyNotify
            and self._systray_manager is not None
            and event.window.id == self._systray_manager.id
        ):
            self._systray_manager = None
            self._embedded = False
            self._dock_at, self._dock_interval = time.monotonic(), DOCK_RETRY_FIRST

    def _retry_dock(self) -> None:
        if not self._want_docked or self._embedded or time.monotonic() < self._dock_at:
            return
        self._dock_at = time.monotonic() + self._dock_interval
        self._dock_interval = min(self._dock_interval * 2, DOCK_RETRY_MAX)
        try:
            self._dock_window()  # a round trip: the selection owner; then the request
        except Exception:  # the host is restarting: try again later
            self._log.debug("asking the tray host to dock failed", exc_info=True)

    def _teardown(self) -> None:
        """Best effort: the X server may not answer; nothing here waits for a reply."""
        with contextlib.suppress(Exception):
            self._window.destroy()
            self._display.flush()
        with contextlib.suppress(Exception):
            self._display.close()

    # -- pystray's implementation methods, run on the loop ------------------------------------

    def _show(self) -> None:
        self._want_docked = True
        self._dock_at, self._dock_interval = time.monotonic(), DOCK_RETRY_FIRST

    def _hide(self) -> None:
        self._want_docked = False
        if self._systray_manager is not None:
            self._undock_window()
        self._embedded = False

    def _update_icon(self) -> None:
        self._icon_data = None  # redrawn from self._icon at the current size
        if self._embedded:
            self._draw()
        self._icon_valid = True

    def _update_title(self) -> None:
        title = self.title or ""
        self._window.set_wm_name(_latin1(title))
        self._window.change_property(self._net_wm_name, self._utf8_string, 8, title.encode())
        self._display.flush()

    def _assert_icon_data(self, width: int, height: int) -> None:
        """The picture for a ``width`` x ``height`` window, drawn at that size (``at_size``),
        on an opaque background as pystray's own does."""
        if self._icon_data and self._icon_data.size == (width, height):
            return
        picture = at_size(self._icon, min(width, height))
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
        opaque = Image.new("RGB", (width, height))
        opaque.paste(picture)
        self._icon_data = opaque

    def _draw(self) -> None:
        width, height = self._size
        if width <= 0 or height <= 0 or self._icon is None:
            return
        self._assert_icon_data(width, height)
        self._window.put_pil_image(self._gc, 0, 0, self._icon_data)
        self._display.flush()

    def _create_atoms(self) -> None:
        super()._create_atoms()
        # Interned once here (a round trip each), never on the loop's update path.
        self._net_wm_name = self._display.intern_atom("_NET_WM_NAME")
        self._utf8_string = self._display.intern_atom("UTF8_STRING")

    def _create_window(self) -> Any:
        window = super()._create_window()
        window.change_attributes(
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask
        )
        return window


def _latin1(text: str) -> str:
    return text.replace("\u2014", "-").encode("latin-1", "replace").decode("latin-1")
