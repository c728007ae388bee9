"""Run figures from a real daemon: status latency and memory under an output flood.

Status latency: an agent prints the wall-clock time and exits at once; we measure from that
moment to the arrival of its final ``run`` event on ``/api/events`` (SSE, over loopback).

Flood: an agent writes 300 MiB to stdout as fast as it can; we sample the daemon's RSS every
20 ms and report the peak growth over the idle figure, and the throughput.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import (
    DaemonProcess,
    EventCollector,
    agent_script,
    start_daemon,
    write_config,
)

LATENCY_RUNS = 30
FLOOD_MIB = 300


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        scripts = Path(tmp) / "scripts"
        scripts.mkdir()
        quick = agent_script(
            scripts, "quick", "import time\nprint(time.time(), flush=True)\n", prompt=False
        )
        flood = agent_script(
            scripts,
            "flood",
            "import sys\nblock = (b'x' * 1023 + b'\\n') * 1024\n"
            f"for _ in range({FLOOD_MIB}):\n    sys.stdout.buffer.write(block)\n",
            prompt=False,
        )
        write_config(
            home, f"[agents.quick]\ncommand = {quick}\n[agents.flood]\ncommand = {flood}\n"
        )
        daemon = start_daemon(home)
        try:
            latency(daemon)
            flood_memory(daemon)
        finally:
            daemon.terminate()


def succeeded(run_id: str) -> Callable[[str, Any], bool]:
    return lambda kind, data: (
        kind == "run" and data["id"] == run_id and data["state"] == "succeeded"
    )


def latency(daemon: DaemonProcess) -> None:
    events = EventCollector(daemon.port, daemon.info.token)
    samples = []
    try:
        for _ in range(LATENCY_RUNS):
            run = daemon.client.request("POST", "/api/runs", {"agent": "quick"})
            events.wait(succeeded(run["id"]))
            received = time.time()
            exited = float(daemon.client.request("GET", f"/api/runs/{run['id']}/log"))
            samples.append(received - exited)
    finally:
        events.close()
    samples.sort()
    print(f"status latency: agent exit → final event over SSE, {LATENCY_RUNS} runs")
    print(
        f"  median {statistics.median(samples) * 1000:.1f} ms"
        f"  (min {samples[0] * 1000:.1f}, p90 {samples[int(len(samples) * 0.9)] * 1000:.1f},"
        f" max {samples[-1] * 1000:.1f})"
    )


def flood_memory(daemon: DaemonProcess) -> None:
    process = psutil.Process(daemon.proc.pid)
    idle = process.memory_info().rss
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    run = daemon.client.request("POST", "/api/runs", {"agent": "flood"})
    while daemon.client.request("GET", f"/api/runs/{run['id']}")["state"] != "succeeded":
        time.sleep(0.02)
    elapsed = time.perf_counter() - began
    done.set()
    sampler.join()
    print(f"output flood: {FLOOD_MIB} MiB through one run (log capped at 50 MiB on disk)")
    print(
        f"  daemon RSS idle {idle / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB,"
        f" growth {(peak - idle) / 2**20:.1f} MiB; {FLOOD_MIB / elapsed:.0f} MiB/s"
    )


if __name__ == "__main__":
    main()
