"""Start-up and idle memory: ``aios serve`` (and ``aios`` with its tray) beside a bare app.

Start → first 200: from spawning the process to the first ``200`` on ``GET /health``, the
process announcing its port on stdout and the client retrying until the answer comes (whole
process: interpreter, imports, everything). Idle RSS: the resident set ``SETTLE`` seconds after
that answer, nothing else attached. The floor is ``bench.bare_app``, a Quart app on Hypercorn
with a pre-bound socket and nothing else, started the same way, alternately with AIOS so both see
the same machine. AIOS starts as a user restarts it: with its home (history database, config)
made by an earlier start, not measured, as is one start of the bare app.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from bench.table import Figure, MiB, Unit, delta_max, median, ratio_max, unmeasured
from tests.harness import aios_env, readline

RUNS = 9
SETTLE = 2.0


def first_200(argv: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.Popen[str]]:
    """Seconds from spawn to the first 200 on /health; the process is left running."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = readline(proc.stdout, 60)
    port = int(line.strip().rsplit(":", 1)[1])
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                break
        except ConnectionRefusedError:
            time.sleep(0.001)  # bound, not listening yet: the floor prints its port that early
        finally:
            conn.close()
    return time.perf_counter() - began, port, proc


def settled_rss(proc: subprocess.Popen[str], settle: float = SETTLE) -> int:
    time.sleep(settle)
    return int(psutil.Process(proc.pid).memory_info().rss)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def one(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    seconds, _, proc = first_200(argv, env)
    try:
        return seconds, settled_rss(proc)
    finally:
        stop(proc)


IMPORT_COST = """
import time, psutil
rss = psutil.Process().memory_info
t0 = time.process_time()
import quart, hypercorn.asyncio, hypercorn.config
t1, m1 = time.process_time(), rss().rss
import aios.cli.daemon, aios.host
t2, m2 = time.process_time(), rss().rss
print(t1 - t0, t2 - t1, m2 - m1)
"""


def import_cost() -> tuple[float, float, int]:
    """CPU seconds to import Quart and Hypercorn, then AIOS on top; the RSS AIOS's imports add."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True
    )
    web, ours, memory = done.stdout.split()
    return float(web), float(ours), int(memory)


def measure() -> list[Figure]:
    bare: list[tuple[float, int]] = []
    aios: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = aios_env(Path(tmp) / "home")
        bare_app = [sys.executable, "-m", "bench.bare_app"]
        serve = [sys.executable, "-m", "aios", "serve", "--no-browser"]
        one(bare_app, env)  # warm-ups: the first AIOS start creates its home
        one(serve, env)
        for _ in range(RUNS):
            bare.append(one(bare_app, env))
            aios.append(one(serve, env))
        tray = tray_rss(Path(tmp))
    start_aios, start_bare = median([a for a, _ in aios]), median([b for b, _ in bare])
    rss_aios, rss_bare = median([m for _, m in aios]), median([m for _, m in bare])
    costs = [import_cost() for _ in range(3)]
    web, ours = median([c[0] for c in costs]), median([c[1] for c in costs])
    modules = median([c[2] for c in costs])
    figures = [
        Figure(
            "start → first 200 on /health",
            start_aios,
            start_bare,
            ratio_max(1.0, Unit.SECONDS),
            "bare app",
            why=[
                f"median of {RUNS}; {(start_aios - start_bare) * 1000:.0f} ms more than the bare "
                f"app. Importing AIOS's own modules takes {ours * 1000:.0f} ms of CPU on top of "
                f"Quart and Hypercorn's {web * 1000:.0f} ms (its dataclasses about half of "
                "it), then the app (25 routes) is built and the database opened.",
                "What would reach it: serving /health before the dashboard and agent modules "
                "are imported (routes that import their module on first use), and fewer "
                "dataclasses built at import.",
            ],
        ),
        Figure(
            "idle RSS, aios serve",
            rss_aios,
            rss_bare,
            ratio_max(1.1, Unit.BYTES),
            "bare app",
            why=[
                f"{(rss_aios - rss_bare) / MiB:.1f} MiB above the bare app, "
                f"{modules / MiB:.1f} MiB of it AIOS's modules (sqlite3 and its library about "
                "1 MiB); the rest the store's thread and the database connection.",
                "What would reach it: the dashboard's modules imported on first use.",
            ],
        ),
    ]
    name = "idle RSS, aios with its tray"
    if isinstance(tray, str):
        figures.append(unmeasured(name, delta_max(15 * MiB, Unit.BYTES), tray))
    else:
        figures.append(
            Figure(
                name,
                tray,
                rss_bare,
                delta_max(15 * MiB, Unit.BYTES),
                "bare app",
                why=[
                    f"{(tray - rss_bare) / MiB:.1f} MiB above the bare app: the daemon's own "
                    f"{(rss_aios - rss_bare) / MiB:.1f} MiB (above), and pystray, Pillow's core "
                    "and Xlib for the icon (its shapes are filled by Pillow's C drawing core; "
                    "ImageDraw, ImageFont and FreeType, 1.5 MiB, load only for a count badge "
                    "drawn at 40 px or more, never for the icon in this tray).",
                    "What would reach it: the daemon's own modules on first use (above).",
                ],
            )
        )
    return figures


@contextmanager
def x_display_with_tray() -> Iterator[str]:
    """A private Xvfb display with trayer as the tray host, as a desktop panel would be."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        display = f":{pipe.readline().strip()}"
    host = subprocess.Popen(
        ["trayer", "--edge", "top", "--widthtype", "request", "--height", "24"],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield display
    finally:
        for proc in (host, server):
            proc.terminate()
            proc.wait(10)


def tray_rss(tmp: Path) -> int | str:
    """Median idle RSS of ``aios`` with its icon in a real tray; a reason when it cannot run."""
    missing = [tool for tool in ("Xvfb", "trayer") if shutil.which(tool) is None]
    if missing:
        return f"not measured: {' and '.join(missing)} not installed (apt-get install xvfb trayer)"
    samples = []
    with x_display_with_tray() as display:
        time.sleep(0.5)  # trayer takes the tray selection
        for i in range(3):
            env = {**aios_env(tmp / f"tray-{i}"), "DISPLAY": display}
            _, _, proc = first_200([sys.executable, "-m", "aios", "--no-browser"], env)
            try:
                samples.append(settled_rss(proc, SETTLE + 1))
            finally:
                stop(proc)
    return int(median(samples))
