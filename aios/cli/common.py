"""What every command shares: its exit codes, the error that ends it, and the running daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aios.paths import Paths
    from aios.runtime import RuntimeInfo

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
# Whoever reads our output went away (`aios ps | head -1`): 128 + SIGPIPE, what a shell reports
# for the Unix tools that SIGPIPE ends. Not the signal itself: it would also end us mid-request.
EXIT_PIPE_CLOSED = 141
LIVE_STATES = ("queued", "starting", "running", "stopping", "backoff")


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        self.code = code
        super().__init__(message)


class NotRunning(CliError):
    def __init__(self) -> None:
        super().__init__(
            "AIOS is not running (start it with `aios` or `aios serve`)", EXIT_NOT_RUNNING
        )


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
