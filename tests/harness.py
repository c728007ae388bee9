"""Starting real daemons and reading their event streams: shared by the tests and the benchmark.

The arrow runs one way: the benchmark (a dev tool) imports this test harness, and no test
imports the benchmark. The benchmark must run without the test tools (pytest, Playwright), so
this module imports neither; ``tests/helpers.py`` builds on it with pytest's parts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aios.client import DaemonClient
from aios.runtime import RuntimeInfo

# Credentials the real CLIs read: never handed to anything we start, so that even a real
# CLI found on PATH could not send a prompt anywhere.
CREDENTIALS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY",
    "CODEX_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY",
)  # fmt: skip
# Debian's chromium in a container: no sandbox, no GPU, nothing fetched in the background.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def aios_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AIOS_") and k not in CREDENTIALS
    }
    # No desktop unless a test gives one (a stand-in display for a stand-in xdg-open, say).
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    # Autostart entries land under XDG_CONFIG_HOME: never in the real user's config.
    env.update(
        {"AIOS_HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"), "PYTHONUNBUFFERED": "1"},
        **extra,
    )
    return env


def run_cli(
    home: Path, *args: str, timeout: float = 60, cwd: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aios", *args],
        env=aios_env(home, **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class DaemonProcess:
    """A real ``aios serve`` subprocess on an ephemeral port."""

    home: Path
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    out: str = ""
    err: str = ""

    @property
    def runtime_file(self) -> Path:
        return self.home / "run" / "aios.json"

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_json(self.runtime_file, json.loads(self.runtime_file.read_text()))

    @property
    def client(self) -> DaemonClient:
        return DaemonClient(self.info)

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def finish(self, timeout: float = 30) -> int:
        """Wait for the exit, collecting what is left of stdout and stderr."""
        out, err = self.proc.communicate(timeout=timeout)
        self.out += out or ""
        self.err += err or ""
        return self.proc.returncode

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish(10)


def start_daemon(home: Path, *args: str, **env: str) -> DaemonProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve", "--no-browser", *args],
        env=aios_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = readline(proc.stdout, timeout=30)
    if not line.startswith("AIOS_PORT:"):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"daemon did not announce a port: {line!r}\n{err}")
    return DaemonProcess(home, proc, int(line.split(":", 1)[1]), line.rstrip("\n"))


def readline(stream: IO[str], timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout:g} s")
    return stream.readline()


class EventCollector:
    """Reads a daemon's SSE stream on a thread, so a test can wait for an event with a timeout."""

    def __init__(self, port: int, token: str, last_event_id: str | None = None) -> None:
        import http.client
        import queue
        import threading

        self.events: queue.Queue[tuple[str | None, str, Any] | None] = queue.Queue()
        self.seen: list[tuple[str | None, str, Any]] = []
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._conn.request("GET", "/api/events", headers=headers)
        self._response = self._conn.getresponse()
        assert self._response.status == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.wait(lambda kind, data: kind == "hello")

    def _read(self) -> None:
        event_id: str | None = None
        kind, data = "message", list[str]()
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        self.events.put((event_id, kind, json.loads("\n".join(data))))
                    kind, data = "message", []
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except Exception:  # close() pulls the socket from under this thread
            pass
        self.events.put(None)

    def wait(
        self, match: Callable[[str, Any], bool], timeout: float = 15
    ) -> tuple[str | None, Any]:
        """The next event for which ``match(kind, data)`` holds; earlier ones are kept in seen."""
        import queue

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self.events.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout:g} s") from None
            if item is None:
                raise AssertionError("the event stream ended")
            self.seen.append(item)
            if match(item[1], item[2]):
                return item[0], item[2]

    def wait_end(self, timeout: float = 15) -> None:
        """Wait until the server ends the stream."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            import queue

            try:
                item = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                return
            self.seen.append(item)
        raise AssertionError("the event stream did not end")

    def close(self) -> None:
        import socket as socket_module

        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket_module.SHUT_RDWR)
        self._response.close()
        self._conn.close()
        self._thread.join(5)


def write_config(home: Path, text: str) -> Path:
    path = home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def agent_script(directory: Path, name: str, body: str, *, prompt: bool = True) -> str:
    """A small Python agent in a file; returns the TOML command array for it."""
    script = directory / f"{name}.py"
    script.write_text(body)
    return json.dumps([sys.executable, str(script), *(["{prompt}"] if prompt else [])])
