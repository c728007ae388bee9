"""A scripted model: a real HTTP server on 127.0.0.1 that answers an agent CLI's API calls from a
script written by the test, and records every request it got.

Each API (tests/models/anthropic.py, openai_responses.py, openai_chat.py, gemini.py) is a
subclass that knows its paths and how to write a :data:`Reply` in its wire format; this module
owns the server, the script and the record. A test scripts the conversation ("turn 1: write
hello.txt with a tool; turn 2: say done"): each model call takes the next reply; once the script
is used up, the model says "done" again and counts the overrun. A reply can also come late
(:class:`Slow`: its first byte waits) or be cut off (:class:`Drop`: the server hangs up halfway
through the answer), as a real network does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Text:
    """The model answers in words and ends its turn."""

    text: str


@dataclass(frozen=True)
class Tool:
    """The model calls a tool (named as the CLI names it) with this input."""

    name: str
    input: dict[str, Any] | str


@dataclass(frozen=True)
class Fail:
    """The API refuses: an HTTP status with the API's own error body."""

    status: int
    message: str


@dataclass(frozen=True)
class Blocks:
    """One answer of several parts (words, then a tool call), as Claude's models give them:
    Anthropic's wire format only."""

    parts: tuple[Text | Tool, ...]


Said = Text | Tool | Fail | Blocks  # what a subclass writes in its wire format


@dataclass(frozen=True)
class Slow:
    """The model answers ``reply``, but only after ``seconds`` of silence: not even the status
    line comes sooner (a slow first byte)."""

    seconds: float
    reply: Said


@dataclass(frozen=True)
class Drop:
    """The connection is closed halfway through the answer to ``reply``: the status, the
    headers (with the whole answer's length) and half of its bytes are sent, then the server
    hangs up."""

    reply: Said = Text("this answer is cut off")


Reply = Said | Slow | Drop


@dataclass(frozen=True)
class Usage:
    """The token counts one answer reports."""

    input: int
    output: int


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None

    @property
    def text(self) -> str:
        """The whole body as JSON text: for "does the request mention X"."""
        return json.dumps(self.body)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass
class Script:
    replies: list[Reply]
    taken: int = 0
    overrun: int = 0
    usages: list[Usage] = field(default_factory=list)
    # How the last reply taken is delivered (late, or cut off); None: at once and whole.
    manner: Slow | Drop | None = None

    def next(self) -> tuple[Said, Usage]:
        reply: Reply
        if self.taken < len(self.replies):
            reply = self.replies[self.taken]
        else:
            reply, self.overrun = Text("done"), self.overrun + 1
        self.taken += 1
        self.manner = reply if isinstance(reply, Slow | Drop) else None
        said = reply.reply if isinstance(reply, Slow | Drop) else reply
        # Distinct, predictable counts per answer, so a test can tell which ones a CLI summed.
        usage = Usage(input=1000 + 100 * self.taken, output=10 + self.taken)
        if not isinstance(said, Fail) and not isinstance(reply, Drop):  # a cut answer counts none
            self.usages.append(usage)
        return said, usage


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up (a CLI stopped mid-request) is no error of the test's


class ScriptedModel:
    """The server; subclasses write :meth:`answer`."""

    def __init__(self, *replies: Reply) -> None:
        self.script = Script(list(replies))
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with model._lock:
                    model.seen.append(seen)
                    model.script.manner = None
                    answer = model.answer(seen)
                    manner, model.script.manner = model.script.manner, None
                if isinstance(manner, Slow):
                    time.sleep(manner.seconds)  # this request's thread only: others go on
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if isinstance(manner, Drop):
                    self.wfile.write(answer.body[: len(answer.body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # hang up: the rest never comes
                    self.close_connection = True
                    return
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the record is in model.seen

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def then(self, *replies: Reply) -> None:
        """More of the script (for a continued session)."""
        with self._lock:
            self.script.replies.extend(replies)

    def calls(self, path_part: str) -> list[Seen]:
        """The requests whose path contains ``path_part``."""
        with self._lock:
            return [seen for seen in self.seen if path_part in seen.path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a subclass writes ------------------------------------------------------------------

    def answer(self, seen: Seen) -> Answer:
        """The answer to one request (called under the lock, in arrival order)."""
        return not_found(seen)


def json_answer(body: object, status: int = 200) -> Answer:
    return Answer(status, "application/json", json.dumps(body).encode())


def sse(events: Iterable[tuple[str | None, object]]) -> Answer:
    """A whole event stream: ``event: NAME`` (when named) and ``data: JSON`` per event."""
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return Answer(200, "text/event-stream", "".join(out).encode())


def not_found(seen: Seen) -> Answer:
    return json_answer({"error": {"message": f"no such path: {seen.path}"}}, 404)
