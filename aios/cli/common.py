"""What the ``aios`` commands share: exit codes, errors, reaching the daemon, tables."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from aios.paths import Paths

if TYPE_CHECKING:
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


def colour_wanted(choice: str) -> bool:
    """``--color``: always, never, or auto: on a terminal, unless ``NO_COLOR`` is set to
    anything but the empty string (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


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
