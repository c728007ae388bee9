"""Start-to-ready time and idle RSS of a real ``aios serve``, as whole-process figures.

Start-to-ready: from spawning ``python -m aios serve`` to reading ``AIOS_PORT:<port>`` on its
stdout (interpreter start and imports included). Idle RSS: the process's resident set 2 s after
ready, with no client attached. Median of several runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

RUNS = 7


def one_run() -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AIOS_HOME": home}
        env.pop("DISPLAY", None)
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "aios", "serve", "--no-browser"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = time.perf_counter() - began
        assert line.startswith("AIOS_PORT:"), line
        time.sleep(2)
        rss = psutil.Process(proc.pid).memory_info().rss
        proc.terminate()
        proc.communicate(timeout=30)
        return ready, rss


def main() -> None:
    results = [one_run() for _ in range(RUNS)]
    ready = sorted(r for r, _ in results)
    rss = sorted(m for _, m in results)
    print(f"startup: {RUNS} runs of `aios serve`")
    print(
        f"  start-to-ready  median {statistics.median(ready) * 1000:.0f} ms"
        f"  (min {ready[0] * 1000:.0f}, max {ready[-1] * 1000:.0f})"
    )
    print(
        f"  idle RSS        median {statistics.median(rss) / 2**20:.1f} MiB"
        f"  (min {rss[0] / 2**20:.1f}, max {rss[-1] / 2**20:.1f})"
    )


if __name__ == "__main__":
    main()
