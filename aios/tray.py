"""The tray icon: the face of the desktop package to AIOS. It owns the host, shows its state,
and is how most people start AIOS.

The host runs the daemon on its own thread and loop (``aios.host.Service.start``); the tray
reaches the facade only through its ``submit`` (``run_coroutine_threadsafe``) and listens to the
event bus. Icon changes go to the icon's backend (``aios.desktop.backend`` picks one: a
StatusNotifierItem, pystray's GTK, or XEmbed without a menu), which never makes the caller wait
or runs them on its own loop; notifications go through ``aios.desktop.notifier`` whatever the
icon. No display, or no usable backend, means headless: the same daemon, one line on stderr.

Threads: our backends run their loop on a thread of their own, and the main thread only waits
for Quit, in short waits so that SIGINT/SIGTERM handlers run however stuck the desktop is (an
X server that stopped answering). pystray's own backends (GTK, AppKit, Win32) keep the main thread.
"""

from __future__ import annotations

import functools
import logging
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aios import browser
from aios.desktop.autostart import AutostartState, for_platform
from aios.desktop.backend import (
    NOTIFICATIONS,
    Backend,
    check_display,
    choose,
    on_linux,
    session_bus_has,
)
from aios.desktop.icon import IconModel, IconState, draw, status, tooltip
from aios.desktop.loader import NoTray
from aios.desktop.menu import SEPARATOR, Entry, to_pystray
from aios.desktop.notifier import Action, DesktopNotifier, IconNotifier, NoNotifier, Notifier
from aios.events import Event
from aios.host import Service, ServiceError
from aios.paths import Paths
from aios.runs import RunState
from aios.unseen import UnseenCounts

log = logging.getLogger("aios.tray")

RECENT = 5
DOCK_WAIT = 60.0  # at login the tray host may start after us (a known race on KDE)
# How long Quit waits for the icon's loop to end before going on without it: an X server that
# stopped answering must not keep AIOS from stopping its runs and leaving.
ICON_STOP = 2.0
WAKE = 0.25  # the main thread's longest wait, so signal handlers run promptly

__all__ = ["NoTray", "Tray", "TrayState", "check_display"]


@dataclass
class TrayState:
    """What the icon and menu show, kept up to date from the event bus.

    The tray keeps no count of its own: ``counts`` are the daemon's ``summary`` events and
    ``unseen`` its ledger of what the user has not looked at (``aios.unseen``, cleared by any
    dashboard page in view), so the tray, the dashboard and ``/api/status`` agree.
    """

    counts: dict[str, int] = field(default_factory=dict)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    unseen: UnseenCounts = field(default_factory=UnseenCounts)
    service_down: bool = False
    # Runs whose agent waits for the user to allow a tool: run id -> (agent, request).
    approvals: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # The daemon's storage trouble ("disk full", ...: its `storage` events), shown until it clears.
    disk: str | None = None

    @property
    def running(self) -> int:
        """Live runs that have left the queue (as the dashboard counts them)."""
        return sum(
            self.counts.get(s.value, 0) for s in RunState if s.is_live and s is not RunState.QUEUED
        )

    @property
    def queued(self) -> int:
        return self.counts.get(RunState.QUEUED.value, 0)

    @property
    def live(self) -> int:
        return self.running + self.queued

    def model(self) -> IconModel:
        """The state that matters most wins the picture; the counts are the same in each."""
        if self.service_down:
            return IconModel(IconState.ERROR)
        if self.unseen.total or self.disk:
            state = IconState.ATTENTION
        elif self.live:
            state = IconState.RUNNING
        else:
            state = IconState.IDLE
        unseen = self.unseen
        counts = (self.running, unseen.failed, self.queued, unseen.needs_you)
        return IconModel(state, *counts, note=self.disk)


class Tray:
    def __init__(self, paths: Paths, *, open_browser: bool) -> None:
        self.paths = paths
        self.open_browser = open_browser
        self.service = Service(paths, announce=True)
        self.state = TrayState()
        self.autostart = for_platform()
        self.backend: Backend | None = None
        self.icon: Any = None
        self.notifier: Notifier = NoNotifier()
        self._remove_listener: Callable[[], None] | None = None
        self._closing = False
        self._quit = threading.Event()
        self._loop_started = False
        self._updates: queue.Queue[Callable[[], None]] = queue.Queue()
        self._updater: threading.Thread | None = None
        self._shown: IconModel | None = None  # what the icon shows (the updater thread's)

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        self.service.start()
        try:
            self._run()
        finally:
            self.shutdown()
        return 0

    def _run(self) -> None:
        assert self.service.info is not None
        if self.open_browser:
            threading.Thread(target=self.open_dashboard, daemon=True).start()
        self._follow_service()
        try:
            backend = choose(wait=DOCK_WAIT, cancelled=lambda: self._closing)
        except NoTray as exc:
            print(f"aios: running headless: {exc}", file=sys.stderr)
            self._wait_for_quit(None)
            return
        self.backend = backend
        self.notifier = self._make_notifier(backend)
        print(f"aios: {backend.describe()}; {self._notifications_note()}", file=sys.stderr)
        if self._closing:  # asked to quit while the service was starting
            return
        model = self._shown = self.state.model()
        menu = to_pystray(self.menu_entries, backend.pystray)
        self.icon = backend.icon("aios", backend.picture(model), self.title(model), menu=menu)
        if backend.own_thread:
            loop = threading.Thread(target=self._run_icon, name="aios-icon", daemon=True)
            loop.start()
            self._wait_for_quit(loop)
            self._stop_icon(loop)
        else:
            self._run_icon()

    def _run_icon(self) -> None:
        try:
            self.icon.run(setup=self._setup)
        except Exception:
            log.exception("the tray icon failed")

    def _wait_for_quit(self, loop: threading.Thread | None) -> None:
        """Until Quit, or the icon's loop ends by itself (the desktop session went away).

        Short waits, because Python runs signal handlers only on the main thread between
        bytecodes: a SIGINT the kernel delivers to another thread waits for the next wake-up.
        """
        while not self._quit.wait(WAKE):
            if loop is not None and not loop.is_alive():
                log.info("the tray icon's loop ended; quitting")
                return

    def _stop_icon(self, loop: threading.Thread) -> None:
        """Stop the icon, waiting at most ``ICON_STOP`` s: its display may not answer."""
        icon = self.icon
        threading.Thread(target=icon.stop, name="aios-icon-stop", daemon=True).start()
        loop.join(ICON_STOP)
        if loop.is_alive():
            log.warning("the tray icon did not stop within %g s; leaving it behind", ICON_STOP)

    def _setup(self, icon: Any) -> None:
        self._loop_started = True
        if self._closing:  # a signal arrived before the icon loop was up
            icon.stop()
            return
        icon.visible = True
        threading.Thread(target=self._watch_service, name="aios-tray-watch", daemon=True).start()

    def quit(self) -> None:
        """Quit: stop all runs gracefully, shut the server down, leave."""
        log.info("quitting (icon loop %s)", "up" if self._loop_started else "not up yet")
        self._closing = True  # no more redraws; _setup stops a loop that is not up yet
        self._quit.set()
        backend = self.backend
        if self.icon is not None and self._loop_started and backend and not backend.own_thread:
            # pystray's own loop holds the main thread; stopping it is what lets run() go on.
            threading.Thread(target=self.icon.stop, name="aios-icon-stop", daemon=True).start()

    def shutdown(self) -> None:
        self._closing = True
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self.service.stop()
        self.notifier.close()

    def _make_notifier(self, backend: Backend) -> Notifier:
        if on_linux():
            if session_bus_has(NOTIFICATIONS, activatable=True):
                return DesktopNotifier(image=draw(IconModel(IconState.IDLE)))
            return NoNotifier()
        if getattr(backend.icon, "HAS_NOTIFICATION", False):
            return IconNotifier(lambda: self.icon)
        return NoNotifier()

    def _notifications_note(self) -> str:
        if isinstance(self.notifier, DesktopNotifier):
            return "notifications over D-Bus"
        if isinstance(self.notifier, IconNotifier):
            return "notifications through the icon"
        return "no notifications (no org.freedesktop.Notifications service on the session bus)"

    # -- the service -------------------------------------------------------------------------

    def _follow_service(self) -> None:
        async def subscribe() -> None:
            daemon = self.service.daemon
            assert daemon is not None
            self.state.counts = await daemon.summary()
            self.state.unseen = await daemon.unseen()
            problem = daemon.storage_problem()
            self.state.disk = None if problem is None else storage_note(problem.to_json())
            self.state.recent.extend(r.to_json() for r in reversed(await daemon.runs(limit=RECENT)))
            self._remove_listener = daemon.bus.add_listener(self._on_event)

        self.service.submit(subscribe()).result(10)

    def _on_event(self, event: Event) -> None:
        """On the service's loop: update the model, then redraw on the tray's side."""
        if event.kind == "summary":
            self.state.counts = dict(event.data)
        elif event.kind == "unseen":
            self.state.unseen = UnseenCounts.from_json(event.data)
        elif event.kind == "run":
            run = event.data
            self.state.recent = deque(
                [r for r in self.state.recent if r["id"] != run["id"]], maxlen=RECENT
            )
            self.state.recent.appendleft(run)
            if run.get("pending_approval"):
                self.state.approvals[run["id"]] = (run["agent"], run["pending_approval"])
            else:
                self.state.approvals.pop(run["id"], None)
            if run["state"] in ("succeeded", "failed", "stopped") and not self._closing:
                self._notify_run(run)
        elif event.kind == "attention":
            self._on_attention(event.data)
        elif event.kind == "storage":
            problem = event.data.get("problem")
            self.state.disk = None if problem is None else storage_note(problem)
        else:
            return
        self._refresh()

    def _watch_service(self) -> None:
        self.service.wait_stopped()
        if not self._closing:
            self.state.service_down = True
            log.error("the AIOS service stopped unexpectedly")
            self._refresh()
            self.notifier.notify("AIOS service stopped", "Use Restart service in the menu.")

    def restart_service(self) -> None:
        if self.service.alive:
            return
        self.service = Service(self.paths, announce=False)
        try:
            self.service.start()
        except ServiceError as exc:
            self.notifier.notify("AIOS could not restart", str(exc))
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
            if self.icon is None or self.backend is None:
                return
            # Most events change only the menu (a run's line). A new picture or title makes a
            # StatusNotifierItem host fetch every property again, pixmaps and all (~35 KB).
            if model != self._shown:
                self._shown = model
                self.icon.icon = self.backend.picture(model)
                self.icon.title = self.title(model)
            self.icon.update_menu()

        self._post(apply)

    def _post(self, fn: Callable[[], None]) -> None:
        """Hand an icon update to the updater thread; never block the caller (the service loop).

        Our backends return at once anyway; pystray's may wait for their own loop.
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
        if self.icon is not None and type(self.icon).__module__ == "pystray._xorg":
            # pystray's own X backend sets the name as a Latin-1 STRING: no em dash there.
            text = text.replace("\u2014", "-").encode("latin-1", "replace").decode("latin-1")
        return text

    def _notify_run(self, run: dict[str, Any]) -> None:
        verb = {"succeeded": "finished", "failed": "failed", "stopped": "was stopped"}[run["state"]]
        code = exit_note(run)
        prompt = " ".join(str(run.get("prompt", "")).split())[:60]
        body = prompt or run["id"]
        denials = run.get("denials") or []
        if run["state"] == "failed" and (run.get("hint") or run.get("error")):
            body = " ".join(str(run.get("hint") or run.get("error")).split())[:200]
        elif run["state"] == "succeeded" and denials:
            refused = ", ".join(f"{d['tool']} {d['summary']}".strip() for d in denials[:3])
            body = f"but it was refused {len(denials)}: {refused}"[:200]
        page = functools.partial(self.open_dashboard, f"/runs/{run['id']}")
        self.notifier.notify(
            f"{run['agent']} {verb}{code}", body, [Action("default", "Open", page)]
        )

    def _on_attention(self, data: dict[str, Any]) -> None:
        """A run calls for the user. Runs that ended were already notified with their reason
        (the run's own notification says it); live ones are notified now."""
        page = functools.partial(self.open_dashboard, f"/runs/{data['run']}")
        if data["reason"] == "awaiting_approval" and (request := data.get("approval")):
            allow = functools.partial(self.decide, data["run"], request["id"], True)
            deny = functools.partial(self.decide, data["run"], request["id"], False)
            actions = [
                Action("allow", "Allow", allow),
                Action("deny", "Deny", deny),
                Action("default", "Open", page),
            ]
            self.notifier.notify(f"{data['agent']} asks", data["message"], actions)
            return
        if data["reason"] in ("needs_login", "stalled", "offline", "awaiting_input"):
            self.notifier.notify(
                f"{data['agent']} needs you", data["message"], [Action("default", "Open", page)]
            )

    def open_dashboard(self, path: str = "/") -> None:
        """Open a page; it is the page, once in view, that tells the daemon it was seen."""
        info = self.service.info
        if info is None:
            return
        browser.open_dashboard(self.paths, info, path)

    def status_text(self) -> str:
        """The menu's status line: the tooltip's words (``desktop.icon.status``), capitalised."""
        text = status(self.state.model())
        return text[:1].upper() + text[1:]

    def menu_entries(self) -> list[Entry]:
        """The menu, read afresh each time a backend asks (so check marks follow the disk)."""
        recent = tuple(
            Entry(
                f"{r['agent']}: {r['state']} — {' '.join(str(r['prompt']).split())[:40]}",
                functools.partial(self.open_dashboard, f"/runs/{r['id']}"),
            )
            for r in self.state.recent
        ) or (Entry("No runs yet", enabled=False),)
        daemon = self.service.daemon
        agents = daemon.config().agents.values() if daemon else []
        launch = tuple(
            Entry(
                a.label or a.name,
                functools.partial(self.open_dashboard, f"/?agent={a.name}#launch"),
            )
            for a in agents
            if a.availability()[0]
        ) or (Entry("No agent available", enabled=False),)
        asking = [
            Entry(
                f"{agent} wants {request['tool']}: {request['summary']}"[:60],
                submenu=(
                    Entry("Allow", functools.partial(self.decide, run_id, request["id"], True)),
                    Entry("Deny", functools.partial(self.decide, run_id, request["id"], False)),
                    Entry("Open", functools.partial(self.open_dashboard, f"/runs/{run_id}")),
                ),
            )
            for run_id, (agent, request) in list(self.state.approvals.items())
        ]
        entries = [
            Entry("Open Dashboard", self.open_dashboard, default=True),
            Entry(self.status_text(), enabled=False),
            *([SEPARATOR, *asking] if asking else []),
            SEPARATOR,
            Entry("Recent runs", submenu=recent),
            Entry("Launch", submenu=launch),
            Entry("Stop all runs", self.stop_all, enabled=self.state.live > 0),
            SEPARATOR,
            Entry(
                "Start at login",
                self.toggle_autostart,
                checked=self.autostart.status().state is AutostartState.ENABLED,
            ),
        ]
        if self.state.service_down:
            entries.append(Entry("Restart service", self.restart_service))
        entries.append(Entry("Quit", self.quit))
        return entries

    def decide(self, run_id: str, approval_id: str, allow: bool) -> None:
        """Allow or deny a request from the menu or a notification (deciding twice is
        harmless; one that is no longer pending is logged and left)."""
        daemon = self.service.daemon
        if daemon is None:
            return
        try:
            self.service.submit(daemon.decide(run_id, approval_id, allow)).result(10)
        except Exception as exc:  # it was answered elsewhere, or the run ended meanwhile
            log.info("approval %s of run %s: %s", approval_id, run_id, exc)

    def stop_all(self) -> None:
        daemon = self.service.daemon
        if daemon is not None:
            self.service.submit(daemon.stop_all()).result(30)

    def toggle_autostart(self) -> None:
        if self.autostart.status().state is AutostartState.ENABLED:
            self.autostart.disable()
        else:
            self.autostart.enable()
        self._refresh()


def storage_note(problem: dict[str, str]) -> str:
    """A `storage` event's problem, as short as a tooltip line can be."""
    if problem.get("kind") == "disk_full":
        return "disk full: runs' output is not kept"
    if problem.get("kind") == "corrupt":
        return "history database damaged"
    return "history database cannot be written"


def _on_main(icon: Any, fn: Callable[[], None]) -> None:
    """Run ``fn`` where the backend allows pystray calls.

    macOS: AppKit wants the main thread, so hop there through PyObjC. Our backends queue the
    change for their own loop, pystray's GTK backends marshal into theirs, and Windows' posts to
    its message window, so calling from here is safe for them.
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


def exit_note(run: dict[str, Any]) -> str:
    """`` (exit 3)``, `` (SIGKILL)`` for a signal death (as the CLI and the dashboard name it),
    or nothing for a clean exit."""
    if run.get("exit_signal"):
        return f" ({run['exit_signal']})"
    if run.get("exit_code") not in (None, 0):
        return f" (exit {run['exit_code']})"
    return ""
