"""The commands that start, show and stop AIOS itself: the tray, ``serve``, ``status``, ``open``,
``stop``, ``agents``, ``hooks`` and ``autostart``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from aios.formatting import duration, from_iso, timestamp
from aios.paths import Paths

if TYPE_CHECKING:
    from aios.runtime import RuntimeInfo
from aios.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    LIVE_STATES,
    STOP_MARGIN,
    STOP_WAIT,
    CliError,
    NotRunning,
    call,
    collector_paused,
    print_table,
    running,
)


def cmd_default(args: argparse.Namespace) -> int:
    """The tray icon owning the daemon; headless (with one line saying why) where none can show."""
    import signal  # noqa: PLC0415 - the daemon's imports: see the module docstring
    import threading  # noqa: PLC0415

    with collector_paused():
        from aios import browser, logs  # noqa: PLC0415
        from aios.host import AlreadyRunning, ServiceError  # noqa: PLC0415
        from aios.tray import NoTray, Tray, check_display  # noqa: PLC0415
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
        from aios.host import AlreadyRunning, Service, ServiceError  # noqa: PLC0415
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
        print(f"aios: to sign in, open {browser.login_url(info)}", file=sys.stderr)
    else:
        print(
            "aios: to sign in, run `aios open` (or `aios open --print` for an address)",
            file=sys.stderr,
        )
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


def cmd_agents(args: argparse.Namespace) -> int:
    body = call(running(Paths.from_env()), "GET", "/api/agents")
    assert isinstance(body, dict)
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    rows = [
        (
            agent["name"],
            agent["source"],
            "yes" if agent["available"] else "no",
            (agent.get("auth") or "").replace("_", " "),
            " ".join(agent["command"]),
        )
        for agent in body["agents"]
    ]
    print_table(("NAME", "SOURCE", "AVAILABLE", "LOGIN", "COMMAND"), rows)
    # What to do about each agent that cannot run yet, one line each under the table: the hints
    # are too long for a column.
    notes = [note for agent in body["agents"] if (note := agent_note(agent))]
    if notes:
        print()
        for note in notes:
            print(note)
    problems = body["config"]["problems"]
    if problems:
        print(
            f"\n{len(problems)} problem(s) in the config file (an error leaves its agent or"
            " setting out; a warning does not):"
        )
        for problem in problems:
            print(f"  {problem}")
    return EXIT_OK


def agent_note(agent: dict[str, Any]) -> str | None:
    """``claude: 'claude' not found on PATH — install Claude Code: npm install -g …``; what the
    login check said; or None when there is nothing to say."""
    name = agent["name"]
    if not agent["available"]:
        hint = agent.get("install_hint")
        return f"{name}: {agent['unavailable_reason']}" + (f" — {hint}" if hint else "")
    detail, auth = agent.get("auth_detail"), agent.get("auth")
    if auth == "not_logged_in":
        hint = detail or agent.get("login_hint")
        return f"{name}: not logged in" + (f" — {hint}" if hint else "")
    if detail:
        return f"{name}: {(auth or 'unknown').replace('_', ' ')} — {detail}"
    return None


def cmd_hooks(args: argparse.Namespace) -> int:
    info = running(Paths.from_env())
    body = call(info, "GET", "/api/hooks")
    assert isinstance(body, dict)
    if args.action == "list":
        if args.number is not None:
            raise CliError("a hook number goes with `aios hooks test`", EXIT_USAGE)
        if args.json:
            print(json.dumps(body, indent=2))
            return EXIT_OK
        print_hooks(body)
        return EXIT_OK
    numbers = [args.number] if args.number is not None else [h["number"] for h in body["hooks"]]
    if not numbers:
        raise CliError(f"no hooks to test: add a [[hooks]] table to {body['config']['path']}")
    failed = 0
    results = []
    for number in numbers:
        hook = next((h for h in body["hooks"] if h["number"] == number), None)
        # The daemon answers once the delivery is over: its timeout, and a URL's retries.
        wait = float(hook["timeout"]) * 4 + 7 + 10 if hook else None
        answer = call(info, "POST", f"/api/hooks/{number}/test", timeout=wait)
        assert isinstance(answer, dict)
        results.append(answer)
        done = answer["delivery"]
        failed += not done["ok"]
        if not args.json:
            word = "ok" if done["ok"] else "failed"
            print(f"hook {number} ({answer['hook']['target']}): {word}: {done['detail']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_FAILURE if failed else EXIT_OK


def print_hooks(body: dict[str, Any]) -> None:
    rows = []
    for hook in body["hooks"]:
        last = hook["last"]
        when = f"{timestamp(from_iso(last['at']))} " if last else ""
        outcome = f"{when}{'ok' if last['ok'] else 'failed'}: {last['detail']}" if last else "-"
        on = ",".join(hook["on"]) + (f" ({','.join(hook['agents'])})" if hook["agents"] else "")
        rows.append((str(hook["number"]), on, hook["target"], outcome))
    if rows:
        print_table(("#", "ON", "SENDS TO", "LAST DELIVERY"), rows)
    else:
        print(f"no hooks in {body['config']['path']}")
    for problem in body["config"]["problems"]:
        print(f"  {problem}", file=sys.stderr)


def cmd_autostart(args: argparse.Namespace) -> int:
    """Works without a running daemon: it only reads and writes the login entry."""
    from aios.desktop.autostart import AutostartError, for_platform  # noqa: PLC0415

    try:
        entry = for_platform()
        status = {"enable": entry.enable, "disable": entry.disable, "status": entry.status}[
            args.action
        ]()
    except AutostartError as exc:
        raise CliError(str(exc)) from exc
    print(f"autostart {status.state}: {status.location}")
    if status.detail:
        print(status.detail)
    return EXIT_OK
