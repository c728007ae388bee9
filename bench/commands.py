"""``aios status`` and ``aios ps`` end to end, beside a stdlib HTTP client doing the same call.

Each is a fresh process (``python -m aios status``), timed from spawn to exit, against a running
daemon. The floor is the least any Python client can do: start the interpreter, read the runtime
file, send one ``GET`` with ``http.client``, print the answer. Median of ``RUNS``, alternating.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.table import Figure, Unit, at_most, median
from tests.harness import DaemonProcess, aios_env

RUNS = 15
STDLIB_CLIENT = """
import http.client, json, os, sys
info = json.load(open(os.path.join(os.environ["AIOS_HOME"], "run", "aios.json")))
conn = http.client.HTTPConnection("127.0.0.1", info["port"])
conn.request("GET", sys.argv[1], headers={"Authorization": "Bearer " + info["token"]})
print(conn.getresponse().read().decode())
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def measure(daemon: DaemonProcess) -> list[Figure]:
    env = aios_env(daemon.home)
    figures = []
    for command, path in (("status", "/api/status"), ("ps", "/api/runs?limit=50")):
        aios, floor = [], []
        for _ in range(RUNS):
            floor.append(timed([sys.executable, "-c", STDLIB_CLIENT, path], env))
            aios.append(timed([sys.executable, "-m", "aios", command], env))
        figures.append(
            Figure(
                f"aios {command}, end to end",
                median(aios),
                median(floor),
                at_most(0.150, Unit.SECONDS),
                "stdlib client",
                why=[
                    f"median of {RUNS}; {(median(aios) - median(floor)) * 1000:.0f} ms more than "
                    "the stdlib client: modules imported (python -X importtime -m aios status)"
                ],
            )
        )
    return figures
