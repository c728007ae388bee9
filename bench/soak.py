"""Soak (opt-in: ``make soak``, ``python -m bench soak``): flat under long use.

One fresh daemon runs ``RUNS`` short runs (10,000 by default; ``AIOS_SOAK_RUNS`` to change it)
with ``FAST + SLOW`` SSE clients on ``/api/events`` the whole time: the fast ones read as events
come, the slow ones (a 4 KiB receive buffer, a few KiB read every 50 ms) fall behind, are dropped
by the bus as it drops any subscriber that cannot keep up, and come back with ``Last-Event-ID``
as a browser does. Runs are launched in rounds of ``ROUND`` (the queue holds 100) and each round
waits for its runs to end.

What is judged, against the same daemon after its first round of 100 runs (settled for a few
seconds): its RSS at the end, after ``IDLE`` seconds without work, within 15 MiB; its open files
and threads back where they were; every run in history with a final state; every fast client
given every run's final event. The slow clients' drops and replays are reported, not judged:
being dropped is the designed answer to a client that does not read.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.table import Figure, MiB, Unit, at_most, delta_max
from tests.harness import DaemonProcess, agent_script, start_daemon, write_config

RUNS = int(os.environ.get("AIOS_SOAK_RUNS", "10000"))
FIRST = 100
ROUND = 100
FAST = 10
SLOW = 10
IDLE = 30.0
SETTLE = 3.0
# A short agent that says a little, as a quick tool call would.
QUICK = "import sys\nfor i in range(5):\n    print('line', i, sys.argv[1:])\n"
_EVENT = re.compile(rb"id: (\d+)\nevent: run\ndata: (\{[^\n]*\})\n")
_FINAL_STATES = {"succeeded", "failed", "stopped", "interrupted"}


class Client:
    """One SSE connection to /api/events; ``slow`` reads a little at a time and reconnects
    (with the last id it saw) when the daemon drops it."""

    def __init__(self, daemon: DaemonProcess, slow: bool) -> None:
        self.daemon, self.slow = daemon, slow
        self.finals: set[str] = set()
        self.last_id: str | None = None
        self.drops = 0
        self._stop = threading.Event()
        self.sock = self._connect()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.daemon.port))
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
        sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{self.daemon.port}\r\n"
            f"Authorization: Bearer {self.daemon.info.token}\r\nAccept: text/event-stream\r\n"
            f"{resume}\r\n".encode()
        )
        sock.settimeout(0.5)
        return sock

    def _read(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096 if self.slow else 1 << 20)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:  # dropped: come back as a browser's EventSource does
                self.drops += 1
                self.sock.close()
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                self.sock = self._connect()
                buffer.clear()
                continue
            buffer += data
            end = 0
            for match in _EVENT.finditer(buffer):
                self.last_id = match.group(1).decode()
                run = json.loads(match.group(2))
                if run.get("state") in _FINAL_STATES:
                    self.finals.add(run["id"])
                end = match.end()
            del buffer[: max(end, len(buffer) - 65536)]
            if self.slow:
                time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def snapshot(process: psutil.Process) -> tuple[int, int, int]:
    """(RSS bytes, open file descriptors, threads) of the daemon."""
    return int(process.memory_info().rss), process.num_fds(), process.num_threads()


def round_of(daemon: DaemonProcess, count: int) -> list[str]:
    client = daemon.client
    ids = [
        client.request("POST", "/api/runs", {"agent": "quick", "prompt": "go"})["id"]
        for _ in range(count)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = client.request("GET", f"/api/runs?limit={count}")
        if all(r["state"] in _FINAL_STATES for r in runs if r["id"] in set(ids)):
            return ids
        time.sleep(0.2)
    raise AssertionError(f"a round of {count} runs did not end within 120 s")


def measure(scratch: Path) -> list[Figure]:
    home = scratch / "soak"
    command = agent_script(scratch, "soak-quick", QUICK)
    write_config(
        home,
        f"max_concurrent = 32\nretention = {RUNS + 1000}\n[agents.quick]\ncommand = {command}\n",
    )
    daemon = start_daemon(home)
    process = psutil.Process(daemon.proc.pid)
    clients: list[Client] = []
    began = time.monotonic()
    try:
        time.sleep(SETTLE)
        clients = [Client(daemon, slow=False) for _ in range(FAST)]
        clients += [Client(daemon, slow=True) for _ in range(SLOW)]
        launched = round_of(daemon, FIRST)
        time.sleep(SETTLE)
        after_first = snapshot(process)
        peak = after_first[0]
        while len(launched) < RUNS:
            launched += round_of(daemon, min(ROUND, RUNS - len(launched)))
            peak = max(peak, snapshot(process)[0])
            if len(launched) % 1000 == 0:
                print(f"  soak: {len(launched)} runs, RSS {peak / MiB:.0f} MiB", file=sys.stderr)
        time.sleep(IDLE)
        at_end = snapshot(process)
        history = daemon.client.request("GET", "/api/status")
        fast = [c for c in clients if not c.slow]
        missed = max(len(set(launched) - c.finals) for c in fast)
        slow = [c for c in clients if c.slow]
        drops = sum(c.drops for c in slow)
        slow_missed = max(len(set(launched) - c.finals) for c in slow)
    finally:
        for c in clients:
            c.close()
        daemon.terminate()
    minutes = (time.monotonic() - began) / 60
    counts = history.get("counts", history)
    why = [
        f"{len(launched):,} runs in {minutes:.1f} min, {FAST} fast and {SLOW} slow SSE clients; "
        f"RSS {after_first[0] / MiB:.1f} MiB after the first {FIRST}, peak {peak / MiB:.1f}, "
        f"{at_end[0] / MiB:.1f} after {IDLE:.0f} s idle; files {after_first[1]} → {at_end[1]}, "
        f"threads {after_first[2]} → {at_end[2]}; the slow clients were dropped {drops} times "
        f"and came back with Last-Event-ID (the most runs one of them never saw ended: "
        f"{slow_missed}); history {json.dumps(counts)[:200]}",
    ]
    return [
        Figure(
            f"soak: RSS after {len(launched):,} runs and {IDLE:.0f} s idle",
            at_end[0],
            after_first[0],
            delta_max(15 * MiB, Unit.BYTES),
            f"after {FIRST}",
            why=why,
        ),
        Figure(
            "  … open files",
            at_end[1],
            after_first[1],
            delta_max(0, Unit.COUNT),
            "baseline",
            why=why,
        ),
        Figure(
            "  … threads", at_end[2], after_first[2], delta_max(0, Unit.COUNT), "baseline", why=why
        ),
        Figure(
            "  … final events a fast client missed", missed, None, at_most(0, Unit.COUNT), why=why
        ),
    ]
