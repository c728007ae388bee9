"""Slow viewers: what the daemon holds for a client that stops reading while a run floods output.

Two fresh daemons (default 50 MiB log cap) each run an agent printing ``FLOOD_MIB`` MiB. The
floor: the first, with no client attached, gives the RSS growth the flood itself costs. The
second has two slow viewers from the start - a dashboard tab on the run's page
(``/ui/events?view=run``) and an ``/api/events`` client - sockets with a tiny receive buffer that
never read. RSS is sampled every 20 ms: its peak growth beyond the floor's is what the viewers
cost while connected; after they disconnect, what is left beyond the floor's own leftover is
what was not freed.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psutil

from bench.table import Figure, MiB, Unit, delta_max
from tests.harness import DaemonProcess, agent_script, start_daemon, write_config

FLOOD_MIB = 300
VIEWERS = 2


class Sampler:
    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = self.rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def stop(self) -> int:
        self._done.set()
        self._thread.join(5)
        return self.peak


def slow_viewer(daemon: DaemonProcess, path: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", daemon.port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
        f"Authorization: Bearer {daemon.info.token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock  # and never read from again


def flood(daemon: DaemonProcess, viewers: bool) -> tuple[int, int, int]:
    """(idle RSS, peak RSS, RSS 2 s after the end and after any viewer has gone)."""
    time.sleep(1.0)
    sampler = Sampler(daemon.proc.pid)
    idle = sampler.rss()
    client = daemon.client
    run = client.request("POST", "/api/runs", {"agent": "flood"})
    socks = []
    if viewers:
        socks = [
            slow_viewer(daemon, f"/ui/events?view=run&run={run['id']}"),
            slow_viewer(daemon, "/api/events"),
        ]
    while client.request("GET", f"/api/runs/{run['id']}")["state"] != "succeeded":
        time.sleep(0.05)
    time.sleep(1.0)  # what the viewers were sent is still being held
    for sock in socks:
        sock.close()
    time.sleep(2.0)
    peak = sampler.stop()
    return idle, peak, sampler.rss()


def measure(scratch: Path) -> list[Figure]:
    results = []
    for viewers in (False, True):
        home = scratch / f"viewers-{viewers}"
        command = agent_script(
            scratch,
            "flood300",
            "import sys\nblock = (b'x' * 1023 + b'\\n') * 1024\n"
            f"for _ in range({FLOOD_MIB}):\n    sys.stdout.buffer.write(block)\n",
            prompt=False,
        )
        write_config(home, f"[agents.flood]\ncommand = {command}\n")
        daemon = start_daemon(home)
        try:
            results.append(flood(daemon, viewers))
        finally:
            daemon.terminate()
    (idle_a, peak_a, after_a), (idle_b, peak_b, after_b) = results
    growth_a, growth_b = peak_a - idle_a, peak_b - idle_b
    left_a, left_b = after_a - idle_a, after_b - idle_b
    why = [
        f"a flood of {FLOOD_MIB} MiB; RSS idle {idle_b / MiB:.0f} MiB, peak {peak_b / MiB:.0f} MiB "
        f"with the viewers, {peak_a / MiB:.0f} MiB without"
    ]
    return [
        Figure(
            f"slow viewers ({VIEWERS}) while connected, peak RSS growth",
            growth_b,
            growth_a,
            delta_max(VIEWERS * 8 * MiB, Unit.BYTES),
            "no viewer",
            why=why,
        ),
        Figure(
            "  … left after they disconnect",
            left_b,
            left_a,
            delta_max(VIEWERS * 8 * MiB, Unit.BYTES),
            "no viewer",
            why=why,
        ),
    ]
