"""One delivery of one event to one hook, and what came of it.

Both kinds run on a thread of the dispatcher's own pool (never the loop's default executor,
which the store relies on), so no fork, wait, name lookup or socket ever holds the event loop.

A command runs in a process group of its own with the event as JSON on stdin (from a temporary
file, so a hook that never reads it cannot stall on a full pipe) and its output going to another
(whose tail says why it failed). At its timeout the whole group is killed: a grandchild it left
behind goes too.

A URL gets one POST per attempt, through the standard library's ``http.client``. No
redirect is followed, to any host: a webhook that answers 3xx is reported as failing, with where
it pointed (a redirect to another host would carry the event, and any credential in the body,
where the user never sent it).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from aios.hooks.mask import mask_url
from aios.hooks.message import HookEvent
from aios.hooks.spec import Hook

OUTPUT_TAIL = 300  # characters of a failed command's output kept in its error
USER_AGENT = "AIOS-hooks"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # "HTTP 200", "exit 0", or why it failed
    retry: bool = False  # worth another attempt: a 5xx, a refused or reset connection


@dataclass(frozen=True)
class Delivery:
    """The last delivery of a hook, as the settings page, the API and the CLI show it."""

    at: float  # Unix time it ended
    event: str
    ok: bool
    detail: str
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        from aios.runs import iso  # noqa: PLC0415 - the run record's time format

        return {
            "at": iso(self.at),
            "event": self.event,
            "ok": self.ok,
            "detail": self.detail,
            "attempts": self.attempts,
        }


def finished(event: HookEvent, outcome: Outcome, attempts: int) -> Delivery:
    return Delivery(time.time(), event.name, outcome.ok, outcome.detail, attempts)


# -- commands ----------------------------------------------------------------------------------


def run_command(
    hook: Hook, event: HookEvent, base_env: dict[str, str], running: set[subprocess.Popen[bytes]]
) -> Outcome:
    """One run of a command hook (blocking: on the dispatcher's thread pool, so neither the
    fork nor the wait ever holds the event loop). ``running`` holds it while it runs, for
    ``kill_all`` at shutdown."""
    assert hook.command is not None
    env = {**base_env, **event.environment()}
    stdin, output = _stdin_and_output(event.body("json")[0])
    with stdin, output:
        try:
            process = subprocess.Popen(
                hook.command,
                stdin=stdin,
                stdout=output,
                stderr=output,
                env=env,
                cwd=working_directory(event.run),
                start_new_session=True,  # its own process group, killed as one at the timeout
                close_fds=True,
            )
        except OSError as exc:
            return Outcome(False, f"cannot start {hook.command[0]!r}: {exc.strerror or exc}")
        running.add(process)
        try:
            code = process.wait(hook.timeout)
        except subprocess.TimeoutExpired:
            # Not reaped yet (only this thread waits for it), so its group id is still its own.
            kill_group(process)
            process.wait()
            return Outcome(False, f"timed out after {hook.timeout:g} s: killed")
        finally:
            running.discard(process)
        if code == 0:
            return Outcome(True, "exit 0")
        tail = _tail(output)
        what = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        return Outcome(False, what + (f": {tail}" if tail else ""))


def working_directory(run: dict[str, Any]) -> Path:
    """Where a command hook runs: the run's worktree while it is on disk, else its directory,
    else the home directory (a test event, a directory since removed)."""
    worktree = run.get("worktree") or {}
    candidates = (worktree.get("path") if worktree.get("state") == "open" else None, run.get("cwd"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate and os.path.isdir(candidate):
            return Path(candidate)
    return Path.home()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _stdin_and_output(payload: bytes) -> tuple[IO[bytes], IO[bytes]]:
    stdin = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
    stdin.write(payload)
    stdin.seek(0)
    return stdin, tempfile.TemporaryFile()


def _tail(output: IO[bytes]) -> str:
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(0, size - OUTPUT_TAIL * 4))
    text = " ".join(output.read().decode("utf-8", "replace").split())
    return text[-OUTPUT_TAIL:]


# -- URLs --------------------------------------------------------------------------------------


def post(hook: Hook, event: HookEvent, open_connections: set[HTTPConnection]) -> Outcome:
    """One attempt (blocking: on the dispatcher's thread pool). ``open_connections`` holds its
    connection meanwhile, for ``hang_up`` at shutdown."""
    assert hook.url is not None
    parts = urlsplit(hook.url)
    body, headers = event.body(hook.format)
    headers = {"User-Agent": USER_AGENT, **headers, **hook.headers}
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers.setdefault("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = _connection(parts.scheme, parts.hostname or "", parts.port, hook.timeout)
    open_connections.add(connection)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # a little of the answer, so the connection ends cleanly
    except TimeoutError:
        # Not retried: the server may have the event already, and a slow one would get it four
        # times.
        return Outcome(False, f"timed out after {hook.timeout:g} s")
    except ssl.SSLError as exc:
        return Outcome(False, f"TLS error: {exc.reason or exc}")
    except socket.gaierror as exc:
        return Outcome(False, f"cannot resolve {parts.hostname}: {exc.strerror}", retry=True)
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Outcome(False, f"connection failed: {reason or type(exc).__name__}", retry=True)
    finally:
        open_connections.discard(connection)
        connection.close()
    return _judge(response.status, response.getheader("Location"))


def hang_up(connection: HTTPConnection) -> None:
    """End an attempt from another thread: its blocked send or read fails at once (a thread
    of the pool must not keep the process from exiting until its socket's timeout)."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _connection(scheme: str, host: str, port: int | None, timeout: float) -> HTTPConnection:
    if scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _judge(status: int, location: str | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome(True, f"HTTP {status}")
    if 300 <= status < 400:
        where = f" to {mask_url(location)}" if location else ""
        return Outcome(False, f"HTTP {status}: redirect{where} not followed")
    return Outcome(False, f"HTTP {status}", retry=status >= 500)
