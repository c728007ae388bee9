"""Fast where people wait: an approval request reaching the user, a message reaching the agent,
a launch's first output.

- **request → attention**: a two-way agent (claude's stream-json protocol, ``approvals =
  "ask"``) writes a ``can_use_tool`` request carrying the wall-clock time it wrote it; the
  clock stops when the ``attention`` event reaches an ``/api/events`` client. The request is
  denied and a follow-up message makes the agent ask again, ``ASKS`` times in one run.
- **message → stdin**: the same agent notes when each user message line arrives on its stdin
  (and says it in its next request); the clock starts just before ``POST /api/runs/{id}/message``
  is sent.
- **launch → first byte**: a program that writes one byte at once; through AIOS, from just
  before ``POST /api/runs`` to the run's first ``log`` event at an ``/api/events`` client; its
  floor, the same program started directly (``subprocess.Popen``, a pipe, the first byte read).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from bench.table import Figure, Unit, at_most, delta_max, median, percentile
from tests.harness import DaemonProcess, agent_script, start_daemon, write_config

T = TypeVar("T")
ASKS = 60
LAUNCHES = 40

# Claude's two-way protocol, as little of it as AIOS needs: initialize, then per user message a
# can_use_tool request whose input says when the message arrived and when the request left.
ASKER = """\
import json, sys, time
def emit(event):
    sys.stdout.write(json.dumps(event) + "\\n"); sys.stdout.flush()
n = 0
for raw in sys.stdin:
    arrived = time.time()
    message = json.loads(raw)
    if message.get("type") == "control_request":
        emit({"type": "control_response", "response": {"subtype": "success",
              "request_id": message["request_id"], "response": {}}})
    elif message.get("type") == "user":
        n += 1
        emit({"type": "control_request", "request_id": f"req-{n}", "request": {
              "subtype": "can_use_tool", "tool_name": "Bash",
              "input": {"command": f"{arrived!r} {time.time()!r}"}}})
    elif message.get("type") == "control_response":
        emit({"type": "result", "subtype": "success", "is_error": False, "num_turns": n})
"""
FIRST_BYTE = "import os\nos.write(1, b'x')\n"


class Attentions:
    """One /api/events client on a thread: when each attention and each first log arrived."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.asked: dict[str, tuple[float, dict[str, object]]] = {}
        self.first_log: dict[str, float] = {}
        self._cond = threading.Condition()
        self._sock = socket.create_connection(("127.0.0.1", daemon.port))
        self._sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
            f"Authorization: Bearer {daemon.info.token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        self._sock.settimeout(0.2)
        while not self._stop:
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                return
            now = time.time()
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for raw in events:
                kind = data_line = None
                for line in raw.split(b"\n"):
                    if line.startswith(b"event: "):
                        kind = line[7:].decode()
                    elif line.startswith(b"data: "):
                        data_line = line[6:]
                if data_line is None or kind not in ("attention", "log"):
                    continue
                event = json.loads(data_line)
                with self._cond:
                    if kind == "attention" and event.get("approval"):
                        self.asked[event["approval"]["id"] + event["run"]] = (now, event)
                    elif kind == "log":
                        self.first_log.setdefault(event["run"], now)
                    self._cond.notify_all()

    def wait(self, what: str, table: Mapping[str, T]) -> T:
        with self._cond:
            if not self._cond.wait_for(lambda: what in table, 30):
                raise AssertionError(f"{what}: never arrived")
            return table[what]

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self._sock.close()


def asking(daemon: DaemonProcess, events: Attentions) -> tuple[list[float], list[float]]:
    client = daemon.client
    to_attention, to_stdin = [], []
    run = client.request("POST", "/api/runs", {"agent": "asker", "prompt": "go"})
    sent = time.time()
    for n in range(1, ASKS + 1):
        arrived_at, event = events.wait(f"req-{n}{run['id']}", events.asked)
        approval = event["approval"]
        assert isinstance(approval, dict)
        received, asked = (float(x) for x in str(approval["summary"]).split())
        to_attention.append(arrived_at - asked)
        if n > 1:  # the first message went in with the launch
            to_stdin.append(received - sent)
        client.request(
            "POST", f"/api/runs/{run['id']}/approval", {"id": f"req-{n}", "decision": "deny"}
        )
        time.sleep(0.02)
        sent = time.time()
        client.request("POST", f"/api/runs/{run['id']}/message", {"prompt": "again"})
    client.request("POST", f"/api/runs/{run['id']}/done", {})
    return to_attention, to_stdin


def first_bytes(daemon: DaemonProcess, events: Attentions) -> list[float]:
    samples = []
    for _ in range(LAUNCHES):
        began = time.time()
        run = daemon.client.request("POST", "/api/runs", {"agent": "first-byte"})
        arrived = events.wait(run["id"], events.first_log)
        samples.append(arrived - began)
    return samples


def direct_first_bytes(script: str) -> list[float]:
    samples = []
    for _ in range(LAUNCHES):
        began = time.time()
        with subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            proc.stdout.read(1)
            samples.append(time.time() - began)
            proc.wait()
    return samples


def measure(scratch: Path) -> list[Figure]:
    home = scratch / "waiting"
    asker = agent_script(scratch, "asker", ASKER)  # "{prompt}": the two-way arguments go there
    first = agent_script(scratch, "first-byte", FIRST_BYTE, prompt=False)
    write_config(
        home,
        f"[agents.asker]\ncommand = {asker}\n"
        + 'format = "claude-stream-json"\napprovals = "ask"\n'
        + f"[agents.first-byte]\ncommand = {first}\n",
    )
    daemon = start_daemon(home)
    events = Attentions(daemon)
    try:
        to_attention, to_stdin = asking(daemon, events)
        through = first_bytes(daemon, events)
    finally:
        events.close()
        daemon.terminate()
    direct = direct_first_bytes(json.loads(first)[1])
    return [
        Figure(
            "approval request → attention event, p50",
            percentile(to_attention, 50),
            None,
            at_most(0.010, Unit.SECONDS),
            why=[f"p99 {percentile(to_attention, 99) * 1000:.1f} ms over {len(to_attention)}"],
        ),
        Figure(
            "message from the API → agent's stdin, p50",
            percentile(to_stdin, 50),
            None,
            at_most(0.005, Unit.SECONDS),
            why=[f"p99 {percentile(to_stdin, 99) * 1000:.1f} ms over {len(to_stdin)}"],
        ),
        Figure(
            "launch → first output byte at a client, median",
            median(through),
            median(direct),
            delta_max(0.030, Unit.SECONDS),
            "started directly",
            why=[
                "through AIOS: the POST, the spawn on its thread, the read, and the log event "
                "(sent at once for a run's first output, not at the next 75 ms flush)"
            ],
        ),
    ]
