"""The ``aios`` command line (DESIGN.md section 3).

Parsing is declared once in ``build_parser``; each command is a function taking the parsed
arguments and returning an exit code. Errors become one line on stderr and an exit code,
never a traceback: 0 ok, 1 failure, 2 usage error, 3 not running.

Commands that talk to a running daemon are clients: they import the standard library and
``aios.client`` only. The service (Quart, Hypercorn), the tray (pystray, Pillow), the browser
and autostart modules are imported inside the commands that use them, so ``aios status``
starts about as fast as any Python client can, and ``aios serve`` carries no client code
(``make bench`` measures both).

The modules, by concept: ``parser`` declares the commands and ``prompt`` parses a command line
(the prompt among the options); ``daemon`` starts, opens, asks after and stops AIOS; ``runs``
starts, follows, lists and stops runs; ``agents``, ``hooks`` and ``autostart`` are one command
each; ``common`` has the exit codes, the error that ends a command and the way to the daemon;
``tables`` prints lists.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from aios.cli.common import EXIT_FAILURE, EXIT_PIPE_CLOSED, CliError
from aios.cli.parser import Handler, build_parser
from aios.cli.prompt import parse
from aios.paths import Paths

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else list(argv))
    handler: Handler = args.handler
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
