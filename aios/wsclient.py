"""A small blocking WebSocket client for the daemon's terminal route: ``aios attach`` and tests.

wsproto (Hypercorn's own WebSocket layer, so already installed) over a plain socket: no event
loop, so ``aios attach`` can wait on its terminal, the socket and a signal in one ``select``.
JSON text frames only, as the protocol (docs/terminal.md) has them; pings are answered.

Exceptions: ``Refused`` (the handshake was answered with an HTTP error: its status and the
daemon's ``error``), ``OSError`` for the socket, ``ProtocolError`` for a peer that speaks nonsense.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = ["ProtocolError", "Refused", "WebSocket"]

CHUNK = 65536


class Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        self.status = status
        self.error = error
        super().__init__(f"{status}: {error}")


class ProtocolError(Exception):
    pass


class WebSocket:
    def __init__(self, sock: socket.socket, ws: WSConnection) -> None:
        self.sock = sock
        self._ws = ws
        self._messages: deque[dict[str, Any]] = deque()
        self._text: list[str] = []
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str = ""

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        host_header: str | None = None,
        timeout: float = 10.0,
    ) -> WebSocket:
        """Open ``ws://host:port/path`` with ``headers``; raises ``Refused`` if answered with an
        HTTP error instead of the upgrade."""
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            ws = WSConnection(ConnectionType.CLIENT)
            request = Request(
                host=host_header or f"{host}:{port}",
                target=path,
                extra_headers=[(k.encode(), v.encode()) for k, v in headers],
            )
            sock.sendall(ws.send(request))
            client = cls(sock, ws)
            client._handshake(time.monotonic() + timeout)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return client

    def _handshake(self, deadline: float) -> None:
        status, body, accepted = 0, b"", False
        while not accepted:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer to the WebSocket handshake")
            data = self.sock.recv(CHUNK)
            if not data:
                raise ProtocolError("the connection closed during the handshake")
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, AcceptConnection):
                    accepted = True  # and what came with it is taken below
                elif isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise Refused(status, "")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        raise Refused(status, _error_of(body))
                else:
                    self._take(event)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message))

    def send_text(self, text: str) -> None:
        self.sock.sendall(self._ws.send(TextMessage(data=text)))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(self._ws.send(BytesMessage(data=data)))

    def pending(self) -> list[dict[str, Any]]:
        """Messages already received and not yet taken."""
        taken = list(self._messages)
        self._messages.clear()
        return taken

    def read_available(self) -> None:
        """Read what the socket has now (call when ``select`` says it is readable)."""
        try:
            data = self.sock.recv(CHUNK)
        except ConnectionError:
            data = b""
        if not data:
            self.closed = True
            return
        try:
            self._ws.receive_data(data)
            for event in self._ws.events():
                self._take(event)
        except RemoteProtocolError as exc:
            raise ProtocolError(str(exc)) from exc

    def receive(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message, waiting up to ``timeout``; None once the socket closed."""
        deadline = time.monotonic() + timeout
        while not self._messages:
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the daemon")
            readable, _, _ = select.select([self.sock], [], [], left)
            if readable:
                self.read_available()
        return self._messages.popleft()

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            with contextlib.suppress(OSError, LocalProtocolError):
                self.sock.sendall(self._ws.send(CloseConnection(code=code)))
        self.closed = True
        self.sock.close()

    def _take(self, event: object) -> None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                text = "".join(self._text)
                self._text.clear()
                try:
                    message = json.loads(text)
                except ValueError as exc:
                    raise ProtocolError(f"not JSON: {text[:80]!r}") from exc
                if isinstance(message, dict):
                    self._messages.append(message)
        elif isinstance(event, Ping):
            self.sock.sendall(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            self.close_code, self.close_reason = event.code, event.reason or ""
            with contextlib.suppress(OSError, LocalProtocolError):
                self.sock.sendall(self._ws.send(event.response()))
            self.closed = True


def _error_of(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()
    if isinstance(data, dict) and isinstance(error := data.get("error"), str):
        return error
    return body.decode("utf-8", errors="replace").strip()
