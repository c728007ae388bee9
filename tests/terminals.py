"""Viewers of a real daemon's terminal runs, for the tests: the WebSocket client of ``aios
attach`` (aios.wsclient) with the daemon's token and Origin by default, and a screen model fed
what it receives, so a test waits for what a person would see."""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aios.agents.screen import Screen
from aios.wsclient import WebSocket
from tests.harness import DaemonProcess, start_daemon, write_config

# Asks a question on its terminal and answers; then shows its size when told it changed.
ASK = """
import signal, subprocess, sys
signal.signal(signal.SIGWINCH, lambda *_: print("size:", subprocess.run(
    ["stty", "size"], capture_output=True, text=True).stdout.strip(), flush=True))
name = input("name? ")
print("hello", name, flush=True)
while True:
    line = input()
    if line == "quit":
        break
    print("got", line, flush=True)
"""


def start_terminal_daemon(home: Path, tmp_path: Path) -> DaemonProcess:
    """A daemon with two agents: ``ask`` (ASK, on a terminal) and ``piped`` (sleeps, piped)."""
    script = tmp_path / "ask.py"
    script.write_text(ASK)
    write_config(
        home,
        f"""
[agents.ask]
command = {json.dumps([sys.executable, str(script)])}
terminal = true

[agents.piped]
command = {json.dumps([sys.executable, "-c", "import time; time.sleep(60)"])}
""",
    )
    return start_daemon(home)


def launch(daemon: DaemonProcess, agent: str, **extra: object) -> str:
    run = daemon.client.request(
        "POST", "/api/runs", {"agent": agent, "cwd": str(daemon.home), **extra}
    )
    return str(run["id"])


def state_of(daemon: DaemonProcess, run_id: str) -> str:
    return str(daemon.client.request("GET", f"/api/runs/{run_id}")["state"])


def terminal_path(run_id: str) -> str:
    return f"/api/runs/{run_id}/terminal"


def open_socket(
    daemon: DaemonProcess,
    run_id: str,
    headers: Sequence[tuple[str, str]] | None = None,
    *,
    host_header: str | None = None,
) -> WebSocket:
    """The terminal of ``run_id``, as the CLI opens it unless ``headers`` say otherwise."""
    if headers is None:
        headers = [
            ("Authorization", f"Bearer {daemon.info.token}"),
            ("Origin", f"http://{daemon.base}"),
        ]
    return WebSocket.connect(
        "127.0.0.1", daemon.port, terminal_path(run_id), headers, host_header=host_header
    )


def session_cookie(daemon: DaemonProcess) -> str:
    """``name=value`` of a browser session cookie, from a real sign-in."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        conn.request("GET", f"/login?token={daemon.info.token}")
        response = conn.getresponse()
        response.read()
        cookie = response.getheader("Set-Cookie")
    finally:
        conn.close()
    assert cookie, "no session cookie from /login"
    return cookie.split(";", 1)[0]


class Viewer:
    """One viewer: its first message, then everything after it drawn on a screen model."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        first = socket.receive()
        assert first is not None and first["type"] == "screen", first
        self.first: dict[str, Any] = first
        self.screen = Screen(self.first["cols"], self.first["rows"])
        self.screen.feed(self.first["data"])
        self.messages: list[dict[str, Any]] = []
        self._returned: set[int] = set()

    def take(self, timeout: float = 0.2) -> dict[str, Any] | None:
        try:
            message = self.socket.receive(timeout)
        except TimeoutError:
            return None
        if message is None:
            return None
        self.messages.append(message)
        if message["type"] == "output":
            self.screen.feed(message["data"])
        elif message["type"] in ("resized", "screen"):
            self.screen.resize(message["cols"], message["rows"])
            if message["type"] == "screen":
                self.screen.feed(message["data"])
        return message

    def wait_for(self, text: str, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not any(text in row for row in self.screen.text()):
            if time.monotonic() > deadline:
                shown = "\n".join(self.screen.text()).rstrip()
                raise AssertionError(f"{text!r} never appeared on the screen:\n{shown}")
            if self.take() is None and self.socket.closed:
                raise AssertionError(f"the socket closed before {text!r} appeared")
        return self.screen.text()

    def wait_message(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        """The next message of ``kind`` not returned before (perhaps received already)."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.messages):
                if message["type"] == kind and index not in self._returned:
                    self._returned.add(index)
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind!r} message within {timeout:g} s")
            if self.take() is None and self.socket.closed:
                raise AssertionError(f"the socket closed before a {kind!r} message")

    def type(self, text: str) -> None:
        self.socket.send({"type": "input", "data": text})

    def close(self) -> None:
        self.socket.close()
