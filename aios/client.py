"""Talking to a running daemon over its HTTP API: what the CLI (and a second ``aios``) use.

Standard library only (``http.client``), and little of it (no dataclasses): the CLI should start
about as fast as any Python client can, and needs nothing fancier.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
from collections.abc import Generator, Iterator
from typing import Any, NamedTuple

from aios import runtime
from aios.paths import Paths
from aios.runtime import RuntimeInfo


class ClientError(Exception):
    """Base of everything a daemon call can raise."""


class DaemonUnreachable(ClientError):
    def __init__(self, info: RuntimeInfo, reason: str) -> None:
        super().__init__(f"cannot reach AIOS at {info.url} (pid {info.pid}): {reason}")


class ApiCallError(ClientError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class SseEvent(NamedTuple):
    id: str | None
    event: str
    data: str


class DaemonClient:
    def __init__(self, info: RuntimeInfo, *, timeout: float = 10.0) -> None:
        self.info = info
        self.timeout = timeout

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.info.port, timeout=timeout)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.info.token}", "Accept": "application/json"}
        headers.update(extra or {})
        return headers

    def _send(
        self, method: str, path: str, body: object, timeout: float | None
    ) -> tuple[int, str, bytes]:
        payload = None if body is None else json.dumps(body).encode()
        extra = {} if payload is None else {"Content-Type": "application/json"}
        conn = self._connect(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, path, body=payload, headers=self._headers(extra))
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonUnreachable(self.info, str(exc) or type(exc).__name__) from exc
        finally:
            conn.close()
        content_type = response.getheader("Content-Type", "")
        if response.status >= 400:
            message = None
            if content_type.startswith("application/json"):
                with contextlib.suppress(ValueError):
                    message = json.loads(raw).get("error")
            raise ApiCallError(response.status, message or f"HTTP {response.status}")
        return response.status, content_type, raw

    def request(
        self, method: str, path: str, body: object = None, *, timeout: float | None = None
    ) -> Any:
        """Send a request; returns the decoded JSON (or text) body, raises on any 4xx/5xx."""
        _, content_type, raw = self._send(method, path, body, timeout)
        text = raw.decode("utf-8", errors="replace")
        if content_type.startswith("application/json") and text:
            return json.loads(text)
        return text

    def request_bytes(self, method: str, path: str) -> bytes:
        return self._send(method, path, None, None)[2]

    def events(
        self, path: str = "/api/events", last_event_id: str | None = None
    ) -> Generator[SseEvent, None, None]:
        """Follow a Server-Sent Events stream until the server ends it."""
        extra = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            extra["Last-Event-ID"] = last_event_id
        conn = self._connect(None)
        try:
            conn.request("GET", path, headers=self._headers(extra))
            response = conn.getresponse()
            if response.status >= 400:
                raise ApiCallError(response.status, response.read().decode(errors="replace"))
            yield from _parse_sse(response)
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonUnreachable(self.info, str(exc) or type(exc).__name__) from exc
        finally:
            conn.close()


def _parse_sse(response: http.client.HTTPResponse) -> Iterator[SseEvent]:
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    for raw in response:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event_id, event, "\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                event_id = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)


def confirm(info: RuntimeInfo, *, timeout: float = 2.0) -> bool:
    """Is the daemon named by ``info`` alive, and does it accept its token?"""
    return confirmed_status(info, timeout=timeout) is not None


def confirmed_status(info: RuntimeInfo, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """The daemon's ``/api/status`` if it is alive, accepts its token and is the one named by
    ``info``; else None."""
    if not info.process_alive():
        return None
    try:
        body = DaemonClient(info, timeout=timeout).request("GET", "/api/status")
    except ClientError:
        return None
    return body if isinstance(body, dict) and body.get("pid") == info.pid else None


# How long the CLI waits for a daemon that holds the lock to (re)write its runtime file: it
# checks the file every RUNTIME_CHECK seconds (aios.host) and restores it if it was deleted.
RESTORE_WAIT = 3.0  # three checks, with room for a loaded machine


def find(paths: Paths) -> RuntimeInfo | None:
    """One look: the daemon the runtime file names, if it is alive and accepts its token."""
    try:
        info = runtime.read(paths.runtime_file)
    except runtime.RuntimeFileError:
        return None
    return info if info is not None and confirm(info) else None


def discover(paths: Paths, *, wait: float = 0.0) -> RuntimeInfo | None:
    """The running daemon for these paths, confirmed by an authenticated request, or None.

    ``wait`` covers a daemon that holds the lock but has not written its runtime file yet. When
    the file is missing but a daemon holds the instance lock (someone deleted the file), wait up
    to ``RESTORE_WAIT`` for the daemon to write it again, instead of saying it is not running.
    """
    found = discover_status(paths, wait=wait)
    return found[0] if found is not None else None


def discover_status(
    paths: Paths, *, wait: float = 0.0
) -> tuple[RuntimeInfo, dict[str, Any]] | None:
    """Like ``discover``, with the status that confirmed it (``aios status`` needs no other)."""
    deadline = time.monotonic() + wait
    lock_checked = False
    while True:
        try:
            info = runtime.read(paths.runtime_file)
        except runtime.RuntimeFileError:
            info = None
        if info is not None and (status := confirmed_status(info)) is not None:
            return info, status
        if not lock_checked:
            lock_checked = True
            if runtime.lock_held(paths.lock_file):
                deadline = max(deadline, time.monotonic() + RESTORE_WAIT)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (``aios stop``); True if it went."""
    import psutil  # noqa: PLC0415 - only `aios stop` needs it

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
