"""The ``aios`` command line (DESIGN.md section 3).

Parsing is declared once in ``build_parser``; each command is a function taking the parsed
arguments and returning an exit code. Errors become one line on stderr and an exit code,
never a traceback: 0 ok, 1 failure, 2 usage error, 3 not running.

Commands that talk to a running daemon are clients: they import the standard library and
``aios.client`` only. The client, the service (Quart, Hypercorn), the tray (pystray, Pillow),
the browser and autostart modules are imported inside the commands that use them, so
``aios status`` starts about as fast as any Python client can, and ``aios serve`` carries no
client code (``make bench`` measures both).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from aios import __version__
from aios.formatting import duration
from aios.paths import Paths

if TYPE_CHECKING:
    from aios.client import DaemonClient
    from aios.runtime import RuntimeInfo

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
STOP_WAIT = 120.0  # when the daemon does not say how long its shutdown may take
STOP_MARGIN = 5.0
PS_PAGE = 500  # runs per request when `aios ps` pages through the history (the API's maximum)
LIVE_STATES = ("queued", "starting", "running", "stopping", "backoff")


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        self.code = code
        super().__init__(message)


class NotRunning(CliError):
    def __init__(self) -> None:
        super().__init__("AIOS is not running (start it with `aios` or `aios serve`)", 3)


class Formatter(argparse.HelpFormatter):
    """argparse's, sized to the terminal without importing shutil (argparse's way, which costs
    every command a few milliseconds: shutil imports the bz2 and lzma modules)."""

    def __init__(self, prog: str, **options: Any) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
        except (ValueError, OSError):
            columns = 80
        options.setdefault("width", max(columns - 2, 40))
        super().__init__(prog, **options)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **options: Any) -> None:
        options.setdefault("formatter_class", Formatter)
        super().__init__(*args, **options)

    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage dump: the help is one flag away.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: must be 0-65535")
    return value


def build_parser() -> Parser:
    parser = Parser(
        prog="aios",
        description="AIOS: launch, supervise and keep the history of AI coding agents.",
    )
    parser.add_argument("--version", action="version", version=f"aios {__version__}")
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open the dashboard in a browser"
    )
    parser.set_defaults(handler=cmd_default)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)

    serve = sub.add_parser("serve", help="run the daemon without a tray icon (headless)")
    serve.add_argument("--port", type=port_number, default=0, help="TCP port (default: any free)")
    serve.add_argument("--no-browser", action="store_true", help="do not open the dashboard")
    serve.set_defaults(handler=cmd_serve)

    sub.add_parser("status", help="is AIOS running? (exit 3 if not)").set_defaults(
        handler=cmd_status
    )
    sub.add_parser("open", help="open the dashboard in the default browser").set_defaults(
        handler=cmd_open
    )
    sub.add_parser("stop", help="shut the running daemon down gracefully").set_defaults(
        handler=cmd_stop
    )

    agents = sub.add_parser("agents", help="list agents and whether each is available")
    agents.add_argument("--json", action="store_true", help="print JSON")
    agents.set_defaults(handler=cmd_agents)

    run = sub.add_parser("run", help="start a run; print its id")
    run.add_argument("agent", help="agent name (see `aios agents`)")
    run.add_argument("prompt", nargs="?", default="", help="the task for the agent")
    run.add_argument("--cwd", help="working directory (default: the agent's, else this one)")
    run.add_argument(
        "--wait", action="store_true", help="follow the run and exit with its exit code"
    )
    run.set_defaults(handler=cmd_run)

    ps = sub.add_parser("ps", help="list live runs (--all: the history too)")
    ps.add_argument("--all", action="store_true", help="include finished runs")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.set_defaults(handler=cmd_ps)

    logs_cmd = sub.add_parser("logs", help="print a run's output")
    logs_cmd.add_argument("run", help="run id (or an unambiguous prefix)")
    logs_cmd.add_argument("-f", "--follow", action="store_true", help="follow live output")
    logs_cmd.set_defaults(handler=cmd_logs)

    autostart = sub.add_parser("autostart", help="start AIOS at login: enable, disable, status")
    autostart.add_argument("action", choices=("enable", "disable", "status"))
    autostart.set_defaults(handler=cmd_autostart)

    kill = sub.add_parser("kill", help="stop a run (SIGTERM, then SIGKILL)")
    kill.add_argument("run", help="run id (or an unambiguous prefix)")
    kill.set_defaults(handler=cmd_kill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as exc:
        print(f"aios: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line here, the traceback in the log file
        import logging  # noqa: PLC0415 - only on this path

        logging.getLogger("aios").exception("unexpected error")
        print(f"aios: internal error: {exc} (details in the log file)", file=sys.stderr)
        return EXIT_FAILURE


# -- commands ----------------------------------------------------------------------------------


@contextmanager
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
    with collector_paused():
        import signal  # noqa: PLC0415 - the tray's and the service's imports: see the docstring
        import threading  # noqa: PLC0415

        from aios import browser, logs  # noqa: PLC0415
        from aios.service import AlreadyRunning, ServiceError  # noqa: PLC0415
        from aios.tray import NoTray, Tray, load_pystray  # noqa: PLC0415

    paths = Paths.from_env()
    open_browser = not args.no_browser
    try:
        pystray = load_pystray()
    except NoTray as exc:
        print(f"aios: running headless: {exc}", file=sys.stderr)
        return serve(paths, port=0, open_browser=open_browser, reuse_opens=True)
    handlers = logs.setup(paths.log_file)
    tray = Tray(paths, open_browser=open_browser, pystray=pystray)
    previous = {
        # Quit from a fresh thread: the handler interrupts the icon loop, possibly inside Xlib
        # holding its display lock, and calling back into it from there could deadlock.
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
        from aios import logs  # noqa: PLC0415 - the service's imports: see the docstring
        from aios.service import AlreadyRunning, Service, ServiceError  # noqa: PLC0415

    handlers = logs.setup(paths.log_file)
    try:

        def ready(info: RuntimeInfo) -> None:
            if open_browser:
                from aios import browser  # noqa: PLC0415

                browser.open_dashboard(paths, info)

        service = Service(paths, port=port, announce=True, on_ready=ready)
        try:
            service.run()
        except AlreadyRunning as exc:
            print(exc.info.url)
            print(f"aios: {exc}", file=sys.stderr)
            if reuse_opens and open_browser:
                from aios import browser  # noqa: PLC0415

                browser.open_dashboard(paths, exc.info)
            return EXIT_OK
        except ServiceError as exc:
            raise CliError(str(exc)) from exc
        return EXIT_OK
    finally:
        logs.teardown(handlers)


def running(paths: Paths) -> RuntimeInfo:
    from aios.client import discover  # noqa: PLC0415 - client commands only

    info = discover(paths)
    if info is None:
        raise NotRunning
    return info


def call(info: RuntimeInfo, method: str, path: str, body: object = None) -> object:
    from aios.client import ClientError, DaemonClient  # noqa: PLC0415

    try:
        return DaemonClient(info).request(method, path, body)
    except ClientError as exc:
        raise CliError(str(exc)) from exc


def cmd_status(args: argparse.Namespace) -> int:
    from aios.client import discover_status  # noqa: PLC0415

    found = discover_status(Paths.from_env())  # the status that confirms it is all we print
    if found is None:
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
    if not browser.open_dashboard(paths, info):
        raise CliError(f"no browser could be opened; open {paths.browser_file(info.port).as_uri()}")
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
            "yes" if agent["available"] else f"no: {agent['unavailable_reason']}",
            " ".join(agent["command"]),
        )
        for agent in body["agents"]
    ]
    print_table(("NAME", "SOURCE", "AVAILABLE", "COMMAND"), rows)
    problems = body["config"]["problems"]
    if problems:
        print(
            f"\n{len(problems)} problem(s) in the config file (these agents/settings are ignored):"
        )
        for problem in problems:
            print(f"  {problem}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from aios.client import ClientError, DaemonClient  # noqa: PLC0415

    info = running(Paths.from_env())
    client = DaemonClient(info)
    cwd = args.cwd
    if cwd is not None:
        cwd = str(Path(cwd).expanduser().absolute())
    elif not agent_has_cwd(client, args.agent):
        cwd = os.getcwd()
    try:
        run = client.request(
            "POST", "/api/runs", {"agent": args.agent, "prompt": args.prompt, "cwd": cwd}
        )
        print(run["id"], flush=True)
        if not args.wait:
            return EXIT_OK
        from aios.follow import follow  # noqa: PLC0415

        final = follow(client, run["id"], sys.stdout.buffer)
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    return exit_code_of(final)


def agent_has_cwd(client: DaemonClient, name: str) -> bool:
    from aios.client import ClientError  # noqa: PLC0415

    try:
        body = client.request("GET", "/api/agents")
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    return any(a["name"] == name and a.get("cwd") for a in body["agents"])


def exit_code_of(run: dict[str, Any]) -> int:
    """The agent's exit code; 1 when it ended without one (spawn failure, interrupted)."""
    code = run.get("exit_code")
    if run["state"] == "succeeded":
        return EXIT_OK
    if isinstance(code, int) and code > 0:
        return code
    if isinstance(code, int) and code < 0:
        return 128 - code  # killed by a signal, as a shell reports it
    if run.get("error"):
        print(f"aios: {run['error']}", file=sys.stderr)
    return EXIT_FAILURE


def cmd_ps(args: argparse.Namespace) -> int:
    """Every matching run, newest first, fetched and printed a page at a time: the memory used
    stays that of one page however long the history (``make bench`` measures it)."""
    states = "" if args.all else "".join(f"&state={s}" for s in LIVE_STATES)
    pages = run_pages(running(Paths.from_env()), states)
    if args.json:
        print_json_list(run for page in pages for run in page)
        return EXIT_OK
    header = ("ID", "AGENT", "STATE", "EXIT", "STARTED (UTC)", "PROMPT")
    widths: list[int] | None = None
    for page in pages:
        rows = [
            (
                r["id"],
                r["agent"],
                r["state"],
                "" if r["exit_code"] is None else str(r["exit_code"]),
                (r["started_at"] or r["created_at"] or "")[:19].replace("T", " "),
                one_line(r["prompt"], 40),
            )
            for r in page
        ]
        if widths is None:  # the first page sets the columns; a longer cell later just sticks out
            widths = column_widths(header, rows)
            print_rows([header], widths)
        print_rows(rows, widths)
    if widths is None:
        print("no runs" if args.all else "no live runs (`aios ps --all` shows the history)")
    return EXIT_OK


def run_pages(info: RuntimeInfo, query: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of runs, newest first, each fetched when the previous one has been used."""
    before = ""
    while True:
        page = call(info, "GET", f"/api/runs?limit={PS_PAGE}{query}{before}")
        assert isinstance(page, list)
        if page:
            yield page
        if len(page) < PS_PAGE:
            return
        before = f"&before={page[-1]['id']}"


def print_json_list(items: Iterable[object]) -> None:
    """What ``print(json.dumps(list(items), indent=2))`` prints, one item at a time."""
    import textwrap  # noqa: PLC0415

    out = sys.stdout
    opened = False
    for item in items:
        out.write(",\n" if opened else "[\n")
        out.write(textwrap.indent(json.dumps(item, indent=2), "  "))
        opened = True
    out.write("\n]\n" if opened else "[]\n")


def cmd_logs(args: argparse.Namespace) -> int:
    from aios.client import ClientError, DaemonClient  # noqa: PLC0415
    from aios.follow import LogReader, follow  # noqa: PLC0415

    client = DaemonClient(running(Paths.from_env()))
    try:
        run = client.request("GET", f"/api/runs/{args.run}")
        if args.follow:
            follow(client, run["id"], sys.stdout.buffer)
        else:
            LogReader(client, run["id"], sys.stdout.buffer).drain()
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    return EXIT_OK


def cmd_kill(args: argparse.Namespace) -> int:
    run = call(running(Paths.from_env()), "POST", f"/api/runs/{args.run}/stop")
    assert isinstance(run, dict)
    print(f"{run['id']}: {run['state']}")
    return EXIT_OK


def cmd_autostart(args: argparse.Namespace) -> int:
    """Works without a running daemon: it only reads and writes the login entry."""
    from aios.autostart import AutostartError, for_platform  # noqa: PLC0415

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


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print_rows([header, *rows], column_widths(header, rows))


def column_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]


def print_rows(rows: Iterable[Sequence[str]], widths: Sequence[int]) -> None:
    for row in rows:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
