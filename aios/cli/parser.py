"""Every command and option of ``aios``, declared once: ``build_parser``.

Each command's handler is a function of the module of its concept, taking the parsed arguments
and returning an exit code. The parser names it (``Command``) and it is imported when its
command runs: ``aios status`` does not import the modules of the other commands.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NoReturn

from aios import __version__
from aios.cli.common import EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]


class Command:
    """A command's handler, by name: ``Command("daemon", "cmd_status")`` is
    ``aios.cli.daemon.cmd_status``, imported when it is called."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, args: argparse.Namespace) -> int:
        return self.load()(args)

    def load(self) -> Handler:
        # __import__, not importlib.import_module: `python -X importtime` shows only the former.
        module = __import__(f"aios.cli.{self.module}", fromlist=[self.name])
        handler: Handler = getattr(module, self.name)
        return handler


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
    hooks.set_defaults(handler=Command("hooks", "cmd_hooks"))


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
    parser.set_defaults(handler=Command("daemon", "cmd_default"))
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)

    serve = sub.add_parser("serve", help="run the daemon without a tray icon (headless)")
    serve.add_argument("--port", type=port_number, default=0, help="TCP port (default: any free)")
    serve.add_argument("--no-browser", action="store_true", help="do not open the dashboard")
    serve.set_defaults(handler=Command("daemon", "cmd_serve"))

    sub.add_parser("status", help="is AIOS running? (exit 3 if not)").set_defaults(
        handler=Command("daemon", "cmd_status")
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
    open_cmd.set_defaults(handler=Command("daemon", "cmd_open"))
    sub.add_parser("stop", help="shut the running daemon down gracefully").set_defaults(
        handler=Command("daemon", "cmd_stop")
    )

    agents = sub.add_parser("agents", help="list agents and whether each is available")
    agents.add_argument("--json", action="store_true", help="print JSON")
    agents.set_defaults(handler=Command("agents", "cmd_agents"))

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
        "--terminal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give it a pseudo-terminal, to use and watch from the dashboard or `aios attach` "
        "(--no-terminal: pipes; default: the agent's `terminal` setting)",
    )
    run.add_argument(
        "--wait", action="store_true", help="follow the run and exit with its exit code"
    )
    add_color_option(run)
    run.set_defaults(handler=Command("runs", "cmd_run"))

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
    cont.set_defaults(handler=Command("runs", "cmd_continue"))

    ps = sub.add_parser("ps", help="list live runs (--all: the history too)")
    ps.add_argument("--all", action="store_true", help="include finished runs")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.set_defaults(handler=Command("runs", "cmd_ps"))

    logs_cmd = sub.add_parser("logs", help="print a run's output")
    logs_cmd.add_argument("run", type=run_ref, help="run id (or an unambiguous prefix)")
    logs_cmd.add_argument("-f", "--follow", action="store_true", help="follow live output")
    add_color_option(logs_cmd)
    logs_cmd.set_defaults(handler=Command("runs", "cmd_logs"))

    autostart = sub.add_parser("autostart", help="start AIOS at login: enable, disable, status")
    autostart.add_argument("action", choices=("enable", "disable", "status"))
    autostart.set_defaults(handler=Command("autostart", "cmd_autostart"))

    add_hooks_parser(sub)

    add_live_run_parsers(sub)
    return parser


def add_live_run_parsers(sub: Any) -> None:
    """What acts on a live run: attach to its terminal, stop it."""
    attach = sub.add_parser(
        "attach",
        help="use a terminal run's terminal from this one (Ctrl-] detaches; the run goes on)",
    )
    attach.add_argument("run", type=run_ref, help="run id (or an unambiguous prefix)")
    attach.set_defaults(handler=Command("attach", "cmd_attach"))

    kill = sub.add_parser("kill", help="stop a run (SIGTERM, then SIGKILL)")
    kill.add_argument("run", type=run_ref, help="run id (or an unambiguous prefix)")
    kill.set_defaults(handler=Command("runs", "cmd_kill"))
