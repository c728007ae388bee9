"""A real HTTP server on 127.0.0.1 for hook tests: it records every request it gets.

Paths choose what it answers: ``/status/N`` answers N; ``/flaky/N`` answers 500 to the first N
requests and 200 after; ``/hang`` holds the request until the receiver closes; ``/redirect?to=U``
answers 302 to U; anything else 200.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                with receiver._lock:
                    receiver.requests.append(
                        Received("POST", parts.path, dict(self.headers), body, time.monotonic())
                    )
                    seen = sum(1 for r in receiver.requests if r.path == parts.path)
                kind, _, arg = parts.path.strip("/").partition("/")
                if kind == "hang":
                    receiver._release.wait(60)
                    return
                status, headers = 200, {}
                if kind == "status":
                    status = int(arg)
                elif kind == "flaky":
                    status = 500 if seen <= int(arg) else 200
                elif kind == "redirect":
                    status, headers = 302, {"Location": parse_qs(parts.query)["to"][0]}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()
