"""The ``aios`` command line (DESIGN.md section 3).

Parsing is declared once in ``build_parser`` (here); each command is a function taking the parsed
arguments and returning an exit code, in ``control`` (AIOS itself) or ``runs`` (runs), which share
``common``. Errors become one line on stderr and an exit code,
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
import itertools
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from aios import __version__
from aios.cli.common import EXIT_FAILURE, EXIT_PIPE_CLOSED, EXIT_USAGE, CliError
from aios.cli.control import (
    cmd_agents,
    cmd_autostart,
    cmd_default,
    cmd_hooks,
    cmd_open,
    cmd_serve,
    cmd_status,
    cmd_stop,
)
from aios.cli.runs import cmd_continue, cmd_kill, cmd_logs, cmd_ps, cmd_run
from aios.paths import Paths


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
