"""The tray icon: it owns the service, shows its state, and is how most people start AIOS.

The icon runs on the main thread (macOS requires it); the service runs on its own thread and
loop (``aios.service.Service.start``). The tray talks to the daemon only through the service's
``submit`` (``run_coroutine_threadsafe``) and listens to the event bus for changes, which are
marshalled back to the tray's thread (``_on_main``) before touching pystray.

Backends: pystray picks one (AppIndicator/GTK where it can, else the plain X ``xorg`` backend,
which has no menu: a left click opens the dashboard). No display, or no usable backend, means
headless: the same daemon, with one line on stderr saying why.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aios import browser
from aios.autostart import AutostartState, for_platform
from aios.events import Event
from aios.icon import IconModel, IconState, draw, tooltip
from aios.paths import Paths
from aios.runs import RunState
from aios.service import Service, ServiceError

log = logging.getLogger("aios.tray")

RECENT = 5
DOCK_WAIT = 60.0  # at login the tray host may start after us (a known race on KDE)
QUIT_GRACE = 3.0  # seconds the icon loop gets to end after Quit


class NoTray(Exception):
    """No way to show an icon here; the message says why (for the one stderr line)."""


def load_pystray() -> Any:
    """Import pystray, or explain why it cannot work here.

    ``import pystray`` without a display raises an Xlib error, not ImportError, so anything the
    import raises means "no tray".
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise NoTray("no display (DISPLAY and WAYLAND_DISPLAY are unset)")
    try:
        import pystray  # noqa: PLC0415 - only when a tray is wanted

    except Exception as exc:  # Xlib.error.DisplayNameError, DisplayConnectionError, ...
        raise NoTray(f"no usable tray backend ({type(exc).__name__}: {exc})") from exc
    return pystray


def wait_for_tray_host(timeout: float) -> bool:
    """On X, wait until a system tray owns its selection; True if one does."""
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return True
    try:
        from Xlib import X, display  # noqa: PLC0415
    except ImportError:
        return True
    deadline = time.monotonic() + timeout
    conn = display.Display()
    try:
        atom = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
        while True:
            if conn.get_selection_owner(atom) != X.NONE:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
    finally:
        conn.close()


@dataclass
class TrayState:
    """What the icon and menu show, kept up to date from the event bus."""

    counts: dict[str, int] = field(default_factory=dict)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    failed_unseen: int = 0
    service_down: bool = False

    @property
    def running(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in RunState if s.is_live)

    def model(self) -> IconModel:
        if self.service_down:
            return IconModel(IconState.ERROR)
        if self.failed_unseen:
            return IconModel(IconState.ATTENTION, self.running, self.failed_unseen)
        if self.running:
            return IconModel(IconState.RUNNING, self.running)
        return IconModel(IconState.IDLE)


class Tray:
    def __init__(self, paths: Paths, *, open_browser: bool, pystray: Any) -> None:
        self.paths = paths
        self.open_browser = open_browser
        self.pystray = pystray
        self.service = Service(paths, announce=True)
        self.state = TrayState()
        self.autostart = for_platform()
        self.icon: Any = None
        self._remove_listener: Callable[[], None] | None = None
        self._closing = False
        self._loop_started = False
        self._loop_done = threading.Event()
        self._updates: queue.Queue[Callable[[], None]] = queue.Queue()
        self._updater: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        self.service.start()
        assert self.service.info is not None
        if self.open_browser:
            threading.Thread(target=self.open_dashboard, daemon=True).start()
        self._follow_service()
        if not wait_for_tray_host(DOCK_WAIT):
            log.warning("no system tray appeared within %g s; the icon may not show", DOCK_WAIT)
        if self._closing:  # asked to quit while the service was starting
            self.shutdown()
            return 0
        model = self.state.model()
        self.icon = self.pystray.Icon("aios", draw(model), self.title(model), menu=self.menu())
        try:
            self.icon.run(setup=self._setup)
        finally:
            self._loop_done.set()
            self.shutdown()
        return 0

    def _setup(self, icon: Any) -> None:
        self._loop_started = True
        if self._closing:  # a signal arrived before the icon loop was up
            icon.stop()
            return
        icon.visible = True
        _keep_docking(icon, lambda: self._closing)
        _listen_for_clicks(icon)
        threading.Thread(target=self._watch_service, name="aios-tray-watch", daemon=True).start()

    def quit(self) -> None:
        """Quit: stop all runs gracefully, shut the server down, leave."""
        log.info("quitting (icon loop %s)", "up" if self._loop_started else "not up yet")
        self._closing = True  # no more redraws; _setup stops a loop that is not up yet
        if self.icon is not None and self._loop_started:
            # On its own thread: pystray's stop can block on the X connection's lock.
            threading.Thread(target=self.icon.stop, name="aios-icon-stop", daemon=True).start()
        if threading.current_thread() is threading.main_thread():
            return
        # pystray's X backend sometimes misses its own window's DestroyNotify when stopped
        # from another thread and keeps waiting for X events. Quit must still mean quit: stop
        # everything from here and leave, with the same clean result as the normal path.
        if not self._loop_done.wait(QUIT_GRACE):
            log.warning(
                "the icon loop did not stop within %g s; shutting down from here", QUIT_GRACE
            )
            self.shutdown()
            logging.shutdown()
            os._exit(0)

    def shutdown(self) -> None:
        self._closing = True
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self.service.stop()

    # -- the service -------------------------------------------------------------------------

    def _follow_service(self) -> None:
        async def subscribe() -> None:
            daemon = self.service.daemon
            assert daemon is not None
            self.state.counts = await daemon.summary()
            self.state.recent.extend(r.to_json() for r in reversed(await daemon.runs(limit=RECENT)))
            self._remove_listener = daemon.bus.add_listener(self._on_event)

        self.service.submit(subscribe()).result(10)

    def _on_event(self, event: Event) -> None:
        """On the service's loop: update the model, then redraw on the tray's side."""
        if event.kind == "summary":
            self.state.counts = dict(event.data)
        elif event.kind == "run":
            run = event.data
            self.state.recent = deque(
                [r for r in self.state.recent if r["id"] != run["id"]], maxlen=RECENT
            )
            self.state.recent.appendleft(run)
            if run["state"] in ("succeeded", "failed", "stopped"):
                self._notify(run)
            if run["state"] == "failed":
                self.state.failed_unseen += 1
        else:
            return
        self._refresh()

    def _watch_service(self) -> None:
        self.service.wait_stopped()
        if not self._closing:
            self.state.service_down = True
            log.error("the AIOS service stopped unexpectedly")
            self._refresh()
            self._notify_text("AIOS service stopped", "Use Restart service in the menu.")

    def restart_service(self) -> None:
        if self.service.alive:
            return
        self.service = Service(self.paths, announce=False)
        try:
            self.service.start()
        except ServiceError as exc:
            self._notify_text("AIOS could not restart", str(exc))
            return
        self.state.service_down = False
        self._follow_service()
        threading.Thread(target=self._watch_service, daemon=True).start()
        self._refresh()

    # -- what the user sees ----------------------------------------------------------------------

    def _refresh(self) -> None:
        if self._closing:
            return
        model = self.state.model()

        def apply() -> None:
            if self.icon is None:
                return
            self.icon.icon = draw(model)
            self.icon.title = self.title(model)
            self.icon.update_menu()

        self._post(apply)

    def _post(self, fn: Callable[[], None]) -> None:
        """Hand an icon update to the updater thread; never block the caller (the service loop).

        pystray's X backend runs each property change on its own loop thread and waits for it,
        so a change made as that loop ends would wait forever: it must not be the service loop
        that waits.
        """
        if self._closing:
            return
        if self._updater is None:
            self._updater = threading.Thread(
                target=self._apply_updates, name="aios-tray-updates", daemon=True
            )
            self._updater.start()
        self._updates.put(fn)

    def _apply_updates(self) -> None:
        while True:
            fn = self._updates.get()
            if not self._closing:
                _on_main(self.icon, fn)

    def title(self, model: IconModel) -> str:
        text = tooltip(model)
        if self.pystray.Icon.__module__ == "pystray._xorg":
            # Xlib sets the window name as a Latin-1 STRING: no em dash there.
            text = text.replace("\u2014", "-").encode("latin-1", "replace").decode("latin-1")
        return text

    def _notify(self, run: dict[str, Any]) -> None:
        verb = {"succeeded": "finished", "failed": "failed", "stopped": "was stopped"}[run["state"]]
        code = f" (exit {run['exit_code']})" if run.get("exit_code") not in (None, 0) else ""
        prompt = " ".join(str(run.get("prompt", "")).split())[:60]
        self._notify_text(f"{run['agent']} {verb}{code}", prompt or run["id"])

    def _notify_text(self, title: str, message: str) -> None:
        icon = self.icon
        if icon is not None and getattr(icon, "HAS_NOTIFICATION", False):
            self._post(lambda: icon.notify(message, title))

    def open_dashboard(self, path: str = "/") -> None:
        info = self.service.info
        if info is None:
            return
        self.state.failed_unseen = 0
        browser.open_dashboard(self.paths, info, path)
        self._refresh()

    def status_text(self) -> str:
        if self.state.service_down:
            return "Service stopped"
        counts = self.state.counts
        return (
            f"{self.state.running} running, {counts.get('queued', 0)} queued, "
            f"{counts.get('failed', 0)} failed"
        )

    def menu(self) -> Any:
        item, menu = self.pystray.MenuItem, self.pystray.Menu

        def recent() -> list[Any]:
            return [
                item(
                    f"{r['agent']}: {r['state']} — {' '.join(str(r['prompt']).split())[:40]}",
                    _action(functools.partial(self.open_dashboard, f"/runs/{r['id']}")),
                )
                for r in self.state.recent
            ] or [item("No runs yet", None, enabled=False)]

        def launchers() -> list[Any]:
            daemon = self.service.daemon
            agents = daemon.config().agents.values() if daemon else []
            return [
                item(
                    a.label or a.name,
                    _action(functools.partial(self.open_dashboard, f"/?agent={a.name}#launch")),
                )
                for a in agents
                if a.availability()[0]
            ] or [item("No agent available", None, enabled=False)]

        return menu(
            item("Open Dashboard", _action(self.open_dashboard), default=True),
            item(lambda _: self.status_text(), None, enabled=False),
            menu.SEPARATOR,
            item("Recent runs", menu(recent)),
            item("Launch", menu(launchers)),
            item("Stop all runs", _action(self.stop_all), enabled=lambda _: self.state.running > 0),
            menu.SEPARATOR,
            item(
                "Start at login",
                _action(self.toggle_autostart),
                checked=lambda _: self.autostart.status().state is AutostartState.ENABLED,
            ),
            item(
                "Restart service",
                _action(self.restart_service),
                visible=lambda _: self.state.service_down,
            ),
            item("Quit", _action(self.quit)),
        )

    def stop_all(self) -> None:
        daemon = self.service.daemon
        if daemon is not None:
            self.service.submit(daemon.stop_all()).result(30)

    def toggle_autostart(self) -> None:
        if self.autostart.status().state is AutostartState.ENABLED:
            self.autostart.disable()
        else:
            self.autostart.enable()


def _action(fn: Callable[[], None]) -> Callable[[Any, Any], None]:
    """pystray calls actions with (icon, item); ours take nothing. Errors are logged, not lost."""

    def run(_icon: Any = None, _item: Any = None) -> None:
        try:
            fn()
        except Exception:
            log.exception("tray action failed")

    return run


def _keep_docking(icon: Any, closing: Callable[[], bool]) -> None:
    """pystray's X backend asks to dock once. A tray host that is not ready yet (starting at
    login, or just started) can miss that request, and the icon then never shows. Until our
    window has been reparented into the tray, ask again every second, for a while.
    """
    if type(icon).__module__ != "pystray._xorg":
        return
    window = getattr(icon, "_window", None)
    if window is None:
        return
    deadline = time.monotonic() + DOCK_WAIT
    while time.monotonic() < deadline and not closing():
        time.sleep(1.0)
        try:
            if window.query_tree().parent != icon._display.screen().root:
                return  # docked
            icon._systray_manager = None  # forget the host that ignored us, and ask again
            icon._assert_docked()
        except Exception:  # no host yet (AssertionError), or an X error while it restarts
            log.debug("tray host not ready yet", exc_info=True)


def _listen_for_clicks(icon: Any) -> None:
    """pystray 0.19.5's xorg backend never asks X for button presses (pystray issue #151), so a
    left click would do nothing there; ask for them on its window. Other backends need nothing.
    """
    if type(icon).__module__ != "pystray._xorg":
        return
    from Xlib import X  # noqa: PLC0415

    window = getattr(icon, "_window", None)
    if window is not None:
        window.change_attributes(
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask
        )
        icon._display.flush()


def _on_main(icon: Any, fn: Callable[[], None]) -> None:
    """Run ``fn`` where the backend allows pystray calls.

    macOS: AppKit wants the main thread, so hop there through PyObjC. The X and GTK/AppIndicator
    backends marshal into their own loop inside pystray, and Windows' backend posts to its
    message window, so calling from here is safe for them.
    """
    if icon is None:
        return
    if sys.platform == "darwin":  # pragma: no cover - no macOS here
        from PyObjCTools import AppHelper  # type: ignore[import-not-found]  # noqa: PLC0415

        AppHelper.callAfter(fn)
        return
    try:
        fn()
    except Exception:
        log.exception("updating the tray icon failed")
