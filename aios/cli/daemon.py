"""The commands for AIOS itself: start it (with its tray icon, or headless), open its dashboard,
ask how it is, stop it.

Starting imports the service and the tray here, inside the commands, with the collector
paused; the others are clients (the package docstring says why).
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aios.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    LIVE_STATES,
    CliError,
    NotRunning,
    call,
    running,
)
from aios.formatting import duration
from aios.paths import Paths

if TYPE_CHECKING:
    import argparse

    from aios.runtime import RuntimeInfo

STOP_WAIT = 120.0  # when the daemon does not say how long its shutdown may take
STOP_MARGIN = 5.0


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the daemon's modules are imported: the collector
    would walk every object the imports make, again and again, to find a few hundred of garbage
    (some 50 ms of a start that is measured beside a bare Quart app's; ``make bench``). It runs
    again once they are imported; kept off until the daemon is ready, it raised the idle RSS."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cmd_default(args: argparse.Namespace) -> int:
    """The tray icon owning the daemon; headless (with one line saying why) where none can show."""
    import signal  # noqa: PLC0415 - the daemon's imports: see the package docstring
    import threading  # noqa: PLC0415

    with collector_paused():
        from aios import browser, logs  # noqa: PLC0415
        from aios.agents.spawning import heed_for_children  # noqa: PLC0415
        from aios.host import AlreadyRunning, ServiceError  # noqa: PLC0415
        from aios.tray import NoTray, Tray, check_display  # noqa: PLC0415
    heed_for_children()
    paths = Paths.from_env()
    open_browser = not args.no_browser
    try:
        check_display()
    except NoTray as exc:
        print(f"aios: running headless: {exc}", file=sys.stderr)
        return serve(paths, port=0, open_browser=open_browser, reuse_opens=True)
    handlers = logs.setup(paths.log_file)
    tray = Tray(paths, open_browser=open_browser)
    previous = {
        # Quit from a fresh thread: the handler interrupts whatever the main thread was doing,
        # possibly holding a lock that quitting needs, and waiting for it there would deadlock.
        signum: signal.signal(signum, lambda *_: threading.Thread(target=tray.quit).start())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return tray.run()
    except AlreadyRunning as exc:
        print(exc.info.url)
        print(f"aios: {exc}", file=sys.stderr)
        if open_browser:
            browser.open_dashboard(paths, exc.info)
        return EXIT_OK
    except ServiceError as exc:
        raise CliError(str(exc)) from exc
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        logs.teardown(handlers)


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(Paths.from_env(), port=args.port, open_browser=not args.no_browser)


def serve(paths: Paths, *, port: int, open_browser: bool, reuse_opens: bool = False) -> int:
    with collector_paused():
        from aios import browser, logs  # noqa: PLC0415 - the service's imports
        from aios.agents.spawning import heed_for_children  # noqa: PLC0415
        from aios.host import AlreadyRunning, Service, ServiceError  # noqa: PLC0415
    heed_for_children()
    handlers = logs.setup(paths.log_file)
    try:

        def ready(info: RuntimeInfo) -> None:
            tell_how_to_sign_in(info)
            if open_browser:
                browser.open_dashboard(paths, info)

        service = Service(paths, port=port, announce=True, on_ready=ready)
        try:
            service.run()
        except AlreadyRunning as exc:
            print(exc.info.url)
            print(f"aios: {exc}", file=sys.stderr)
            if reuse_opens and open_browser:
                browser.open_dashboard(paths, exc.info)
            return EXIT_OK
        except ServiceError as exc:
            raise CliError(str(exc)) from exc
        return EXIT_OK
    finally:
        logs.teardown(handlers)


def tell_how_to_sign_in(info: RuntimeInfo) -> None:
    """The person at the terminal gets an address that signs a browser in (as Jupyter prints);
    anything else (a log, a journal) gets the command that prints one, never the token."""
    from aios import browser  # noqa: PLC0415

    if sys.stderr.isatty():
        line = f"aios: to sign in, open {browser.login_url(info)}\n"
    else:
        line = "aios: to sign in, run `aios open` (or `aios open --print` for an address)\n"
    # One write, newline included: the server's log lines go to the same stream from another
    # thread, and print() writes the text and its newline separately (they interleaved).
    sys.stderr.write(line)
    sys.stderr.flush()


def cmd_status(args: argparse.Namespace) -> int:
    from aios.client import discover_status  # noqa: PLC0415

    paths = Paths.from_env()
    found = discover_status(paths)  # the status that confirms it is all we print
    if found is None:
        running(paths)  # says why: not running, or a holder of the lock that does not answer
        raise NotRunning
    _, status = found
    print(f"AIOS {status['version']} running at {status['url']}")
    print(f"pid {status['pid']}, up {duration(float(status['uptime']))}")
    counts = status.get("runs", {})
    live = sum(counts.get(s, 0) for s in LIVE_STATES)
    print(
        f"runs: {live} live, {counts.get('failed', 0)} failed, {counts.get('total', 0)} in history"
    )
    return EXIT_OK


def cmd_open(args: argparse.Namespace) -> int:
    from aios import browser  # noqa: PLC0415

    paths = Paths.from_env()
    info = running(paths)
    if args.forwarded_port is not None and not args.print_address:
        raise CliError("--forwarded-port goes with --print", EXIT_USAGE)
    if args.print_address:
        print(browser.login_url(info, port=args.forwarded_port))
        return EXIT_OK
    page = browser.write_redirect_file(paths, info)
    problem = browser.try_open(page)
    if problem is not None:
        raise CliError(
            f"{problem}; open {page.as_uri()} in a browser on this machine, "
            "or run `aios open --print` for an address to paste into one"
        )
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from aios.client import wait_for_exit  # noqa: PLC0415

    info = running(Paths.from_env())
    answer = call(info, "POST", "/api/shutdown")
    # The daemon says how long its shutdown may take (its runs' stop_timeout decides).
    within = answer.get("within") if isinstance(answer, dict) else None
    wait = STOP_WAIT if not isinstance(within, int | float) else float(within) + STOP_MARGIN
    if not wait_for_exit(info.pid, wait):
        raise CliError(f"AIOS (pid {info.pid}) did not exit within {wait:.0f} s")
    print("AIOS stopped")
    return EXIT_OK
