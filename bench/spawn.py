"""100 runs of ``/bin/true``: from the first ``POST /api/runs`` to every run's final event.

The runs are posted one after another over one keep-alive connection (as a script would), with
``max_concurrent = 64``; the clock stops when the last ``succeeded`` event arrives on
``/api/events``. Floors, in the same run: supervisord starting 100 ``/bin/true`` programs
(``bench.supervisord``), and a bare loop that spawns and waits for ``/bin/true`` 100 times.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench import supervisord
from bench.events import Listeners
from bench.table import Figure, Unit, median, ratio_max
from tests.harness import DaemonProcess

COUNT = 100
ROUNDS = 5


def aios_runs(daemon: DaemonProcess) -> float:
    listeners = Listeners(daemon.port, daemon.info.token, 1)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    headers = {
        "Authorization": f"Bearer {daemon.info.token}",
        "Content-Type": "application/json",
    }
    body = json.dumps({"agent": "true"})
    try:
        began = time.perf_counter()
        ids = []
        for _ in range(COUNT):
            conn.request("POST", "/api/runs", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            assert response.status == 201, answer
            ids.append(json.loads(answer)["id"])
        for run_id in ids:
            listeners.wait(run_id)
        return time.perf_counter() - began
    finally:
        conn.close()
        listeners.close()


def spawn_loop() -> float:
    began = time.perf_counter()
    for _ in range(COUNT):
        subprocess.run(["/bin/true"], check=True)
    return time.perf_counter() - began


def measure(daemon: DaemonProcess) -> list[Figure]:
    found = supervisord.ensure_venv()
    aios, floor, loop = [], [], []
    for _ in range(ROUNDS):
        aios.append(aios_runs(daemon))
        loop.append(spawn_loop())
        if not isinstance(found, str):
            with tempfile.TemporaryDirectory() as tmp:
                floor.append(supervisord.time_start_all(found, Path(tmp), COUNT))
    figure = Figure(
        f"{COUNT} runs, first POST → all final",
        median(aios),
        median(floor) if floor else None,
        ratio_max(1.0, Unit.SECONDS),
        "supervisord",
        why=[
            f"median of {ROUNDS}; per run {median(aios) / COUNT * 1000:.1f} ms, the client waiting "
            "for each POST: an HTTP request (auth, JSON, a commit), a fork and exec on the "
            "spawning thread, its states committed (with other runs', a group commit) and "
            "published while the other runs go on.",
            "What would reach it: fewer hand-overs between threads per run (its spawn and "
            "its commits each go to another thread and back), and run records turned into "
            "JSON without dataclasses.asdict.",
        ],
    )
    if isinstance(found, str):
        figure.why.append(found)
    return [
        figure,
        Figure(
            f"{COUNT} runs, beside a bare spawn-and-wait loop",
            median(aios),
            median(loop),
            None,
            "spawn loop",
        ),
    ]
