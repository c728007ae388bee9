"""The ``aios`` command line (DESIGN.md section 3).

Parsing is declared once in ``build_parser``; each command is a function taking the parsed
arguments and returning an exit code. Errors become one line on stderr and an exit code,
never a traceback: 0 ok, 1 failure, 2 usage error, 3 not running.

Commands that talk to a running daemon are clients: they import the standard library and
``aios.client`` only. The service (Quart, Hypercorn), the tray (pystray, Pillow), the browser
and autostart modules are imported inside the commands that use them, so ``aios status``
starts about as fast as any Python client can, and ``aios serve`` carries no client code
(``make bench`` measures both).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from aios import __version__
from aios.formatting import change_summary, duration, exit_status, from_iso, timestamp, zone
from aios.paths import Paths

if TYPE_CHECKING:
    from aios.client import DaemonClient
    from aios.runtime import RuntimeInfo

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
# Whoever reads our output went away (`aios ps | head -1`): 128 + SIGPIPE, what a shell reports
# for the Unix tools that SIGPIPE ends. Not the signal itself: it would also end us mid-request.
EXIT_PIPE_CLOSED = 141
STOP_WAIT = 120.0  # when the daemon does not say how long its shutdown may take
STOP_MARGIN = 5.0
PS_PAGE = 500  # runs per request when `aios ps` pages through the history (the API's maximum)
LIVE_STATES = ("queued", "starting", "running", "stopping", "backoff")
HINTED = "!"  # in `aios ps`: the daemon has a hint on what to do about this run


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


def run_ref(text: str) -> str:
    """A run id or an unambiguous prefix of one, as it goes in an API path."""
    from urllib.parse import quote  # noqa: PLC0415 - http.client imports it anyway

    ref = text.strip()
    if not ref:
        raise argparse.ArgumentTypeError("must not be empty: give a run id or a prefix of one")
    return quote(ref, safe="")


def add_hooks_parser(sub: Any) -> None:
    hooks = sub.add_parser(
        "hooks", help="list the hooks of config.toml; `aios hooks test [N]` sends a test event"
    )
    hooks.add_argument("action", nargs="?", choices=("list", "test"), default="list")
    hooks.add_argument(
        "number", nargs="?", type=hook_number, help="the hook to test (default: every one)"
    )
    hooks.add_argument("--json", action="store_true", help="print JSON")
    hooks.set_defaults(handler=cmd_hooks)


def hook_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid hook {text!r}: give its number (1, 2, …)")
    return int(text)


COLOR_CHOICES = ("auto", "always", "never")


def add_color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        metavar="WHEN",
        help="colours and other escape codes in the agent's output: auto (the default: only "
        "when stdout is a terminal and NO_COLOR is not set), always, never",
    )


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
    open_cmd = sub.add_parser("open", help="open the dashboard in the default browser")
    open_cmd.add_argument(
        "--print",
        action="store_true",
        dest="print_address",
        help="print a sign-in address instead (for a browser on another machine: it holds the "
        "token, so treat it as a password)",
    )
    open_cmd.add_argument(
        "--forwarded-port",
        type=port_number,
        metavar="PORT",
        help="with --print: the address through a local port forwarded to the daemon's "
        "(ssh -L PORT:127.0.0.1:DAEMON_PORT)",
    )
    open_cmd.set_defaults(handler=cmd_open)
    sub.add_parser("stop", help="shut the running daemon down gracefully").set_defaults(
        handler=cmd_stop
    )

    agents = sub.add_parser("agents", help="list agents and whether each is available")
    agents.add_argument("--json", action="store_true", help="print JSON")
    agents.set_defaults(handler=cmd_agents)

    run = sub.add_parser("run", help="start a run; print its id")
    run.add_argument("agent", help="agent name (see `aios agents`)")
    # After "--" everything is the prompt, even text that starts with "-".
    run.add_argument(
        "prompt",
        nargs="*",
        default=[],
        help='the task for the agent: its words, before, among or after the options (after "--", '
        "words that start with '-' too)",
    )
    run.add_argument(
        "--permission",
        choices=("read-only", "edit", "full"),
        help="what the agent may do in its directory (default: edit, where the agent has modes)",
    )
    run.add_argument("--cwd", help="working directory (default: the agent's, else this one)")
    run.add_argument(
        "--worktree",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="work in a git worktree of its own, on a new branch from HEAD (--no-worktree: in "
        "the directory itself; default: the agent's `worktree` setting)",
    )
    run.add_argument(
        "--wait", action="store_true", help="follow the run and exit with its exit code"
    )
    add_color_option(run)
    run.set_defaults(handler=cmd_run)

    cont = sub.add_parser(
        "continue", help="continue a run's conversation: a new run resuming its session"
    )
    cont.add_argument("run", type=run_ref, help="run id (or an unambiguous prefix)")
    cont.add_argument(
        "prompt", nargs="*", default=[], help="what to tell the agent next, as for `aios run`"
    )
    cont.add_argument(
        "--wait", action="store_true", help="follow the new run and exit with its exit code"
    )
    add_color_option(cont)
    cont.set_defaults(handler=cmd_continue)

    ps = sub.add_parser("ps", help="list live runs (--all: the history too)")
    ps.add_argument("--all", action="store_true", help="include finished runs")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.set_defaults(handler=cmd_ps)

    logs_cmd = sub.add_parser("logs", help="print a run's output")
    logs_cmd.add_argument("run", type=run_ref, help="run id (or an unambiguous prefix)")
    logs_cmd.add_argument("-f", "--follow", action="store_true", help="follow live output")
    add_color_option(logs_cmd)
    logs_cmd.set_defaults(handler=cmd_logs)

    autostart = sub.add_parser("autostart", help="start AIOS at login: enable, disable, status")
    autostart.add_argument("action", choices=("enable", "disable", "status"))
    autostart.set_defaults(handler=cmd_autostart)

    add_hooks_parser(sub)

    kill = sub.add_parser("kill", help="stop a run (SIGTERM, then SIGKILL)")
    kill.add_argument("run", type=run_ref, help="run id (or an unambiguous prefix)")
    kill.set_defaults(handler=cmd_kill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else list(argv))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe must end up in the handler below
        return code
    except BrokenPipeError:
        # Our sockets' errors arrive as ClientError: this one is stdout's reader going away.
        return output_closed()
    except CliError as exc:
        print(f"aios: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line here, the traceback in the log file
        return internal_error(exc)


def output_closed() -> int:
    """End quietly, as Unix tools do when the reader of their output has gone."""
    # Whatever is still buffered can never be written: point stdout at /dev/null so the
    # interpreter's last flush does not fail again on its way out.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_PIPE_CLOSED


def internal_error(exc: Exception) -> int:
    """One line on stderr; the traceback in the log file that line names."""
    from aios import logs  # noqa: PLC0415 - only on this path

    summary = " ".join(str(exc).split()) or type(exc).__name__
    try:
        log_file = Paths.from_env().log_file
        logs.write_exception(log_file, f"aios {' '.join(sys.argv[1:])}: unexpected error", exc)
        where = f"details in {log_file}"
    except OSError as log_exc:  # the log is out of reach: say so, still in one line
        where = f"the log file could not be written: {log_exc}"
    print(f"aios: internal error: {summary} ({where})", file=sys.stderr)
    return EXIT_FAILURE


PROMPT_COMMANDS = ("run", "continue")  # their words after the first are the prompt
WORD, UNKNOWN = "word", "unknown"
NEGATIVE_NUMBER = re.compile(r"-\d+$|-\d*\.\d+$")  # argparse's: a word, not an option


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``. For ``run`` and ``continue``, the words after the agent (or run) are the
    prompt wherever they stand among the options, and everything after ``--`` is prompt too,
    options included.

    argparse alone cannot do either (it settles a ``*`` positional at its first chance, and
    once options come between the agent and ``--``, it has settled the prompt by then), so
    the words are sorted out first, the way argparse itself tells an option from a word.
    """
    parser = build_parser()
    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut + 1 :]
    # Options before the command take no values: the first word is the command.
    at = next((i for i, token in enumerate(head) if not token.startswith("-")), len(head))
    if at == len(head) or head[at] not in PROMPT_COMMANDS:
        args = parser.parse_args(head)
        if cut < len(argv):
            parser.error(f"unrecognized arguments: {' '.join(argv[cut:])}")
        return args
    command = command_parser(parser, head[at])
    options, words = sort_out(command, head[at + 1 :])
    unknown = [token for token, kind in words if kind == UNKNOWN]
    plain = [i for i, (_, kind) in enumerate(words) if kind == WORD]
    if unknown and plain:
        first = plain[0]
        prompt = [token for i, (token, _) in enumerate(words) if i != first]
        suggest_dashes(unknown, [*head[: at + 1], words[first][0], *options, "--", *prompt, *tail])
    if unknown or not plain:  # argparse says what is wrong (no agent, say) and exits
        return parser.parse_args(head)
    args = parser.parse_args([*head[: at + 1], *options, words[0][0]])
    args.prompt = [token for token, _ in words[1:]] + tail  # all words: none is unknown
    warn_options_in_prompt(command, tail)
    return args


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    actions = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    choices: dict[str, argparse.ArgumentParser] = next(actions).choices
    return choices[name]


def option_of(parser: argparse.ArgumentParser, arg: str) -> argparse.Action | str:
    """What argparse makes of ``arg`` among ``parser``'s arguments: the action of the option
    it names (abbreviated or with ``=value``), ``WORD`` (a positional) or ``UNKNOWN``."""
    actions = parser._option_string_actions
    if not arg.startswith("-") or arg == "-":
        return WORD
    name = arg.split("=", 1)[0] if arg.startswith("--") else arg
    if name in actions:
        return actions[name]
    if arg.startswith("--"):
        found = [action for option, action in actions.items() if option.startswith(name)]
        if found:  # more than one: ambiguous, which argparse will say
            return found[0]
    if NEGATIVE_NUMBER.match(arg) or " " in arg:
        return WORD
    return UNKNOWN


def sort_out(
    parser: argparse.ArgumentParser, tokens: list[str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """``tokens`` as the options ``parser`` knows (with their values), and the rest in order:
    words, and options it does not know, each with its kind (``WORD``, ``UNKNOWN``)."""
    options: list[str] = []
    words: list[tuple[str, str]] = []
    rest = iter(tokens)
    for token in rest:
        kind = option_of(parser, token)
        if isinstance(kind, str):
            words.append((token, kind))
            continue
        options.append(token)
        if "=" not in token and kind.nargs != 0:
            options.extend(itertools.islice(rest, 1))
    return options, words


def suggest_dashes(unknown: list[str], suggestion: list[str]) -> NoReturn:
    """An option this command does not know: the line that puts it in the prompt instead."""
    import shlex  # noqa: PLC0415 - only on this path

    them = "them" if len(unknown) > 1 else "it"
    names = f"arguments {', '.join(unknown)}" if len(unknown) > 1 else f"argument {unknown[0]}"
    print(
        f"aios: unrecognized {names}; to pass {them} in the prompt, put {them} after '--': "
        f"{shlex.join(['aios', *suggestion])}",
        file=sys.stderr,
    )
    raise SystemExit(EXIT_USAGE)


def warn_options_in_prompt(parser: argparse.ArgumentParser, prompt: list[str]) -> None:
    """``aios run command -- 'x' --wait``: the prompt ends in ``--wait``, as asked, but that
    is seldom what was meant. Help flags are left alone: ``ls -h`` is a fine prompt."""
    known = {o for o in parser._option_string_actions if o not in ("-h", "--help")}
    found = [t for t in prompt if t in known or ("=" in t and t.split("=", 1)[0] in known)]
    if not found:
        return
    quoted = ", ".join(f"'{token}'" for token in found)
    verb = "are" if len(found) > 1 else "is"
    print(
        f"aios: warning: {quoted} after '--' {verb} part of the prompt; "
        "put AIOS options before '--'",
        file=sys.stderr,
    )


# -- commands ----------------------------------------------------------------------------------


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
    import signal  # noqa: PLC0415 - the daemon's imports: see the module docstring
    import threading  # noqa: PLC0415

    with collector_paused():
        from aios import browser, logs  # noqa: PLC0415
        from aios.service import AlreadyRunning, ServiceError  # noqa: PLC0415
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
        from aios.service import AlreadyRunning, Service, ServiceError  # noqa: PLC0415
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


def running(paths: Paths) -> RuntimeInfo:
    from aios import runtime  # noqa: PLC0415 - client commands only
    from aios.client import discover  # noqa: PLC0415

    info = discover(paths)
    if info is None:
        if runtime.lock_held(paths.lock_file):
            raise CliError(
                f"an AIOS process holds {paths.lock_file} but {paths.runtime_file} is missing "
                "or names a daemon that does not answer; stop that process and start AIOS again"
            )
        raise NotRunning
    return info


def call(
    info: RuntimeInfo, method: str, path: str, body: object = None, timeout: float | None = None
) -> object:
    from aios.client import ClientError, DaemonClient  # noqa: PLC0415

    try:
        return DaemonClient(info).request(method, path, body, timeout=timeout)
    except ClientError as exc:
        raise CliError(str(exc)) from exc


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


def cmd_run(args: argparse.Namespace) -> int:
    from aios.client import DaemonClient  # noqa: PLC0415

    info = running(Paths.from_env())
    client = DaemonClient(info)
    cwd = args.cwd
    if cwd is not None:
        cwd = str(Path(cwd).expanduser().absolute())
    elif not agent_has_cwd(client, args.agent):
        cwd = os.getcwd()
    body = {"agent": args.agent, "prompt": " ".join(args.prompt), "cwd": cwd}
    if args.permission:
        body["permission"] = args.permission
    if args.worktree is not None:
        body["worktree"] = args.worktree
    return start(client, "/api/runs", body, wait=args.wait, colour=args.color)


def cmd_continue(args: argparse.Namespace) -> int:
    from aios.client import DaemonClient  # noqa: PLC0415

    client = DaemonClient(running(Paths.from_env()))
    body = {"prompt": " ".join(args.prompt)}
    return start(client, f"/api/runs/{args.run}/continue", body, wait=args.wait, colour=args.color)


def start(client: DaemonClient, path: str, body: dict[str, Any], *, wait: bool, colour: str) -> int:
    """Start a run (POST ``body`` to ``path``), print its id, and with ``wait`` follow it to its
    end: the exit code is then the run's."""
    from aios.client import ClientError  # noqa: PLC0415
    from aios.follow import follow  # noqa: PLC0415

    try:
        run = client.request("POST", path, body)
        print(run["id"], flush=True)
        if not wait:
            return EXIT_OK
        final = follow(client, run["id"], sys.stdout.buffer, plain=not colour_wanted(colour))
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    report_end(final)
    report_worktree(final)
    return exit_code_of(final)


def colour_wanted(choice: str) -> bool:
    """``--color``: always, never, or auto: on a terminal, unless ``NO_COLOR`` is set to
    anything but the empty string (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def report_end(run: dict[str, Any]) -> None:
    """After a run's output, on stderr (stdout is the agent's): how it ended when it did not
    succeed, and the daemon's hint on what to do about it."""
    from aios.follow import one_plain_line  # noqa: PLC0415

    state, error, ended = run["state"], one_plain_line(run.get("error") or ""), ending(run)
    line = None
    if state == "failed":
        line = f"failed: {error}" if error else f"failed ({ended})" if ended else "failed"
    elif state == "stopped":
        line = f"stopped ({ended})" if ended else "stopped"
    elif state == "interrupted":
        line = f"interrupted: {error}" if error else "interrupted"
    if line is not None:
        print(f"aios: run {run['id']} {line}", file=sys.stderr)
    if hint := one_plain_line(run.get("hint") or ""):
        print(f"hint: {hint}", file=sys.stderr)


def ending(run: dict[str, Any]) -> str | None:
    """``exit code 3``, ``killed by SIGTERM``; None when the run ended without an exit code."""
    code, name = run.get("exit_code"), run.get("exit_signal")
    if code is None:
        return None
    return f"killed by {name}" if name else f"exit code {code}"


def report_worktree(run: dict[str, Any]) -> None:
    """Where a worktree run's changes wait for review (on stderr: stdout is the agent's)."""
    tree, changes = run.get("worktree"), run.get("changes")
    if not tree or not changes:
        return
    summary = change_summary(
        changes["file_count"], changes["added"], changes["deleted"], changes["commits"]
    )
    if summary == "no changes":
        print("aios: no changes; the worktree and its branch are removed", file=sys.stderr)
        return
    print(
        f"aios: {summary} in {tree['path']} (branch {tree['branch']}); merge or discard it "
        "from the run's page",
        file=sys.stderr,
    )


def agent_has_cwd(client: DaemonClient, name: str) -> bool:
    from aios.client import ClientError  # noqa: PLC0415

    try:
        body = client.request("GET", "/api/agents")
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    return any(a["name"] == name and a.get("cwd") for a in body["agents"])


def exit_code_of(run: dict[str, Any]) -> int:
    """The agent's exit code; 128 + N when signal N ended it, as a shell reports it; 1 when it
    did not succeed but has no other code to give (spawn failure, interrupted, failed behind
    exit 0, stopped)."""
    code = run.get("exit_code")
    if run["state"] == "succeeded":
        return EXIT_OK
    if isinstance(code, int) and code > 0:
        return code
    if isinstance(code, int) and code < 0:
        return 128 - code
    return EXIT_FAILURE


def cmd_ps(args: argparse.Namespace) -> int:
    """Every matching run, newest first, fetched and printed a page at a time: the memory used
    stays that of one page however long the history (``make bench`` measures it)."""
    states = "" if args.all else "".join(f"&state={s}" for s in LIVE_STATES)
    pages = run_pages(running(Paths.from_env()), states)
    if args.json:
        print_json_list(run for page in pages for run in page)
        return EXIT_OK
    # Local time, like the dashboard; `--json` keeps the API's UTC.
    header = ("ID", "AGENT", "STATE", "ACTIVITY", "EXIT", f"STARTED ({zone()})", "PROMPT")
    widths: list[int] | None = None
    hinted = False
    for page in pages:
        hinted = hinted or any(r.get("hint") for r in page)
        rows = [
            (
                r["id"],
                r["agent"],
                r["state"],
                activity_text(r),
                exit_status(r["exit_code"], r.get("exit_signal")),
                timestamp(from_iso(r["started_at"] or r["created_at"])),
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
    if hinted:  # on stderr: the table on stdout stays a table
        sys.stdout.flush()
        print(
            f"aios: {HINTED} marks a run with a hint on what to do: `aios logs RUN` prints it",
            file=sys.stderr,
        )
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


def activity_text(run: dict[str, Any]) -> str:
    """What a live run is doing, or why a finished one failed, in a few words; marked when the
    daemon has a hint on what to do."""
    text = activity_words(run)
    if not run.get("hint"):
        return text
    return f"{HINTED} {text}" if text else HINTED


def activity_words(run: dict[str, Any]) -> str:
    activity = run.get("activity")
    if activity:
        detail = run.get("activity_detail")
        return one_line(f"{activity}: {detail}" if detail else activity, 40)
    if run.get("state") == "failed" and run.get("error"):
        return one_line(run["error"], 40)
    return ""


def cmd_logs(args: argparse.Namespace) -> int:
    from aios.client import ClientError, DaemonClient  # noqa: PLC0415
    from aios.follow import FINAL_STATES, LogReader, follow  # noqa: PLC0415

    client = DaemonClient(running(Paths.from_env()))
    plain = not colour_wanted(args.color)
    try:
        run = client.request("GET", f"/api/runs/{args.run}")
        if args.follow:
            run = follow(client, run["id"], sys.stdout.buffer, plain=plain)
        else:
            LogReader(client, run["id"], sys.stdout.buffer, plain=plain).end()
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    if run["state"] in FINAL_STATES:
        report_end(run)
    return EXIT_OK


def cmd_kill(args: argparse.Namespace) -> int:
    run = call(running(Paths.from_env()), "POST", f"/api/runs/{args.run}/stop")
    assert isinstance(run, dict)
    print(f"{run['id']}: {run['state']}")
    return EXIT_OK


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
