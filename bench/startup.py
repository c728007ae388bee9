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
from dataclasses import dataclass
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


def sqlite_library(argv: list[str], env: dict[str, str]) -> int:
    """Resident bytes of SQLite's library in an idle daemon, once its history is open."""
    _, _, proc = first_200(argv, env)
    try:
        time.sleep(SETTLE)
        return library_rss(proc.pid, "libsqlite3")
    finally:
        stop(proc)


def one(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    seconds, _, proc = first_200(argv, env)
    try:
        return seconds, settled_rss(proc)
    finally:
        stop(proc)


PHASES = """
import gc, time
began = time.perf_counter()
import aios.cli
aios.cli.build_parser().parse_args(["serve", "--no-browser"])
cli = time.perf_counter()
gc.disable()  # as aios.cli.daemon does while the daemon's modules are imported
import quart, hypercorn.asyncio, hypercorn.config
web = time.perf_counter()
import aios.cli.daemon, aios.host
ours = time.perf_counter()
gc.enable()
from aios import host
from aios.paths import Paths
marks = {}
build = host.create_app

def timed(daemon):
    start = time.perf_counter()
    app = build(daemon)
    marks["app"] = time.perf_counter() - start
    marks["routes"] = len(list(app.url_map.iter_rules()))
    return app

def ready(info):
    marks["ready"] = time.perf_counter()
    service.request_stop()

host.create_app = timed
service = host.Service(Paths.from_env(), port=0, on_ready=ready)
serving = time.perf_counter()
service.run()
rest = marks["ready"] - serving - marks["app"]
print(cli - began, web - cli, ours - web, marks["app"], rest, marks["routes"])
"""


@dataclass(frozen=True)
class Phases:
    """Where one start's wall-clock time went, in seconds."""

    cli: float  # the command line: importing it and reading the arguments
    web: float  # importing Quart and Hypercorn: the bare app does as much
    ours: float  # importing AIOS's modules on top
    app: float  # building AIOS's app
    rest: float  # the lock, secrets, the history checked and opened, the supervisor, Hypercorn
    routes: int


def phases(env: dict[str, str]) -> Phases:
    """One start of the real service, in process, timed phase by phase (the home made already)."""
    done = subprocess.run(
        [sys.executable, "-c", PHASES], env=env, capture_output=True, text=True, check=True
    )
    cli, web, ours, app, rest, routes = done.stdout.split()
    return Phases(float(cli), float(web), float(ours), float(app), float(rest), int(routes))


IMPORT_COST = """
import psutil
rss = psutil.Process().memory_info
import quart, hypercorn.asyncio, hypercorn.config
before = rss().rss
import sqlite3
between = rss().rss
import aios.cli.daemon, aios.host
print(between - before, rss().rss - between)
"""


def import_cost(env: dict[str, str]) -> tuple[int, int]:
    """The RSS that importing sqlite3, then the rest of AIOS, adds on top of Quart and Hypercorn."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_COST], env=env, capture_output=True, text=True, check=True
    )
    sqlite, ours = done.stdout.split()
    return int(sqlite), int(ours)


def library_rss(pid: int, name: str) -> int:
    """Resident bytes of the shared library ``name`` mapped into process ``pid`` (0 if none)."""
    total = 0
    mapped = False
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            for line in smaps:
                if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    mapped = name in line
                elif mapped and line.startswith("Rss:"):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


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
        sqlite_lib = sqlite_library(serve, env)
        starts = [phases(env) for _ in range(3)]
        costs = [import_cost(env) for _ in range(3)]
        tray = tray_rss(Path(tmp))
    start_aios, start_bare = median([a for a, _ in aios]), median([b for b, _ in bare])
    rss_aios, rss_bare = median([m for _, m in aios]), median([m for _, m in bare])
    cli, web = median([p.cli for p in starts]), median([p.web for p in starts])
    ours = median([p.ours for p in starts])
    app, rest = median([p.app for p in starts]), median([p.rest for p in starts])
    own = cli + ours + app + rest
    sqlite_import, modules = median([c[0] for c in costs]), median([c[1] for c in costs])
    allowed = 0.1 * rss_bare
    figures = [
        Figure(
            "start → first 200 on /health",
            start_aios,
            start_bare,
            ratio_max(1.0, Unit.SECONDS),
            "bare app",
            why=[
                f"median of {RUNS}; {(start_aios - start_bare) * 1000:.0f} ms more than the bare "
                f"app. A start timed phase by phase (median of 3): the command line "
                f"{cli * 1000:.0f} ms, AIOS's modules {ours * 1000:.0f} ms on top of Quart and "
                f"Hypercorn's {web * 1000:.0f} ms, its app {app * 1000:.0f} ms "
                f"({starts[0].routes} routes: Werkzeug compiles each one's "
                f"URL builder), the lock, secrets, history and supervisor {rest * 1000:.0f} ms: "
                f"{own * 1000:.0f} ms of work that the bare app, one route and no history, does "
                "not do.",
                "Why it cannot be reached: 1.0x leaves no time at all for a daemon's own start. "
                "What only some runs need is already imported on first use (each CLI's reader, "
                "the terminal's screen model, psutil, ctypes, the tray); the rest serves the API "
                "and the history. Reaching 1.0x would take answering /health before the daemon "
                "could launch a run: a figure that would say less than the truth.",
            ],
        ),
        Figure(
            "idle RSS, aios serve",
            rss_aios,
            rss_bare,
            ratio_max(1.1, Unit.BYTES),
            "bare app",
            why=[
                f"{(rss_aios - rss_bare) / MiB:.1f} MiB above the bare app, where 1.1x allows "
                f"{allowed / MiB:.1f} MiB: AIOS's modules {modules / MiB:.1f} MiB (their RSS on "
                f"top of Quart and Hypercorn's in a fresh interpreter), sqlite3 "
                f"{sqlite_import / MiB:.1f} MiB to import and SQLite's library "
                f"{sqlite_lib / MiB:.1f} MiB resident once the history is open; the rest the "
                "store's thread and the database connection.",
                "What would reach it: a history kept without SQLite, and AIOS's core (store, "
                "supervisor, API and dashboard) in less code; what only some runs need is "
                "already imported on first use.",
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
                    "What would reach it: less of the daemon's own memory (above).",
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
