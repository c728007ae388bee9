"""A long history: ``GET /`` with 100,000 runs, and ``aios ps --all --json`` paging through them.

The runs are written straight into the history database (one transaction; the schema made by
the real Store), as years of use would leave them, and the daemon keeps them all
(``retention``). ``GET /`` is timed over loopback, whole request (auth, history query, counts,
templates); no floor, the goal is absolute. ``aios ps --all --json`` must print every run, so
its peak RSS (``ru_maxrss`` of the process) is set beside that of ``aios status``: paging keeps
it flat however long the history.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aios.paths import Paths
from aios.runs import RunState, new_run_id
from aios.store import Store
from aios.store_schema import COLUMNS
from bench.table import Figure, MiB, Unit, at_most, delta_max, median
from tests.harness import DaemonProcess, aios_env

HISTORY = 100_000
RENDERS = 30
PEAK_RSS = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    subprocess.run(sys.argv[2:], stdout=out, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def seed(home: Path, count: int = HISTORY) -> None:
    paths = Paths.from_env({"AIOS_HOME": str(home)})

    async def create() -> None:
        store = Store(paths.database, paths.run_logs_dir)
        await store.open()
        await store.close()

    # On a thread of its own: the caller may be inside an event loop (Playwright's, in tests).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(create())).result()
    now = time.time() - count * 10
    rows = []
    for i in range(count):
        failed = i % 7 == 0
        values = {
            "id": new_run_id(),
            "agent": "command",
            "prompt": f"echo run {i}",
            "cwd": "/tmp",
            "state": str(RunState.FAILED if failed else RunState.SUCCEEDED),
            "pid": None,
            "exit_code": 1 if failed else 0,
            "created_at": now + i * 10,
            "started_at": now + i * 10,
            "ended_at": now + i * 10 + 2.5,
            "restarts": 0,
            "error": None,
            "pid_started_at": None,
            "format": "text",
            "denials": "[]",
            "terminal": 0,
        }
        rows.append(tuple(values.get(column) for column in COLUMNS))
    marks = ", ".join("?" * len(COLUMNS))
    db = sqlite3.connect(paths.database)
    with db:
        db.executemany(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
    db.close()


def render_times(daemon: DaemonProcess) -> list[float]:
    times = []
    for _ in range(RENDERS):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        began = time.perf_counter()
        conn.request("GET", "/", headers={"Authorization": f"Bearer {daemon.info.token}"})
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - began)
        conn.close()
        assert response.status == 200 and body.count(b'class="run"') == 50, response.status
    return times


def peak_rss(daemon: DaemonProcess, output: Path, *args: str) -> tuple[int, float]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(output), sys.executable, "-m", "aios", *args],
        env=aios_env(daemon.home),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout), time.perf_counter() - began


def measure(daemon: DaemonProcess, scratch: Path) -> list[Figure]:
    renders = render_times(daemon)
    out = scratch / "ps.json"
    floor, _ = peak_rss(daemon, out, "status")
    paged, seconds = peak_rss(daemon, out, "ps", "--all", "--json")
    with out.open("rb") as file:
        listed = json.load(file)
    out.unlink()
    ps = Figure(
        f"aios ps --all --json, {HISTORY:,} runs: peak RSS",
        paged,
        floor,
        delta_max(8 * MiB, Unit.BYTES),
        "aios status",
        why=[f"printed {len(listed):,} runs in {seconds:.1f} s"],
    )
    if len(listed) != HISTORY:
        ps.wrong = f"printed {len(listed):,} runs, not all {HISTORY:,}"
    return [
        Figure(
            f"GET / with {HISTORY:,} runs in history",
            median(renders),
            None,
            at_most(0.050, Unit.SECONDS),
            why=[f"median of {RENDERS}; the counts and the first page of rows come from SQLite"],
        ),
        ps,
    ]
