"""``python -m bench [GROUP ...]``: measure AIOS beside its floors, in one run, and print one table.

Groups: startup, events, waiting, spawn, capture, commands, history, viewers, dashboard (all by
default, in that order), and soak (only when named: it takes some minutes; ``make soak``).
Nothing here is asserted in the tests: this is where speed is judged.
"""

from __future__ import annotations

import compileall
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    capture,
    commands,
    dashboard,
    events,
    history,
    soak,
    spawn,
    startup,
    viewers,
    waiting,
)
from bench.table import Figure, render
from tests.harness import DaemonProcess, agent_script, start_daemon, write_config

GROUPS = (
    "startup",
    "events",
    "waiting",
    "spawn",
    "capture",
    "commands",
    "history",
    "viewers",
    "dashboard",
)
OPT_IN = ("soak",)
ON_MAIN_DAEMON = {"events", "spawn", "commands", "dashboard"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {system}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main_daemon(tmp: Path) -> DaemonProcess:
    scripts = tmp / "scripts"
    scripts.mkdir()
    quick = agent_script(scripts, "quick", events.QUICK, prompt=False)
    home = tmp / "main"
    write_config(
        home,
        "max_concurrent = 64\n"
        f"[agents.quick]\ncommand = {quick}\n"
        '[agents.true]\ncommand = ["/bin/true"]\n',
    )
    return start_daemon(home)


def precompile() -> None:
    """Byte-compile AIOS (and the bare app) as pip does when it installs a package.

    Quart, Hypercorn and every other dependency were compiled when pip installed them; AIOS is
    installed editable, which leaves compiling to the first import - and an environment with
    PYTHONDONTWRITEBYTECODE set (this one) would make every start compile all of AIOS again,
    some 150 ms, which no installed AIOS pays.
    """
    root = Path(__file__).resolve().parent.parent
    for package in ("aios", "bench"):
        compileall.compile_dir(root / package, quiet=1)


def run(groups: list[str]) -> list[Figure]:
    figures: list[Figure] = []

    def step(name: str, work: Callable[[], list[Figure]]) -> None:
        if name in groups:
            print(f"measuring {name} …", file=sys.stderr, flush=True)
            figures.extend(work())

    with tempfile.TemporaryDirectory(prefix="aios-bench-") as raw:
        tmp = Path(raw)
        step("startup", startup.measure)
        if ON_MAIN_DAEMON & set(groups):
            daemon = main_daemon(tmp)
            try:
                step("events", lambda: events.measure(daemon))
                step("spawn", lambda: spawn.measure(daemon))
                step("commands", lambda: commands.measure(daemon))
                step("dashboard", lambda: dashboard.measure(daemon))
            finally:
                daemon.terminate()
        step("waiting", lambda: waiting.measure(tmp))
        step("capture", lambda: capture.measure(tmp))
        if "history" in groups:
            home = tmp / "history"
            write_config(home, "retention = 200000\n")
            history.seed(home)
            daemon = start_daemon(home)
            try:
                step("history", lambda: history.measure(daemon, tmp))
            finally:
                daemon.terminate()
        step("viewers", lambda: viewers.measure(tmp))
        step("soak", lambda: soak.measure(tmp))
    return figures


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in GROUPS + OPT_IN]
    if unknown:
        names = ", ".join(GROUPS + OPT_IN)
        print(f"unknown group {unknown[0]!r}; one of {names}", file=sys.stderr)
        return 2
    groups = argv or list(GROUPS)
    began, load_before = time.monotonic(), load()
    precompile()
    figures = run(groups)
    print(f"AIOS beside its floors, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{machine()}; Python {platform.python_version()}")
    print(f"load average {load_before} before, {load()} after; {time.monotonic() - began:.0f} s")
    print()
    render(figures)
    return 0


sys.exit(main(sys.argv[1:]))
