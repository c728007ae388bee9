"""supervisord, the floor for starting many short processes, in a scratch venv of its own.

It is installed from PyPI into ``.bench-venv/`` (ignored by git, reused by later runs), never as
a dependency of AIOS. We start it with ``COUNT`` programs that run ``/bin/true``
(``autostart=false``, ``startsecs=0``, output captured to files as supervisord does by default),
wait until it answers, then time ``startAllProcesses`` to every program ``EXITED``: its start-up
is not counted, as the daemon's is not on the AIOS side.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

VENV = Path(__file__).resolve().parent.parent / ".bench-venv"
SPEC = "supervisor>=4.2"


def ensure_venv() -> Path | str:
    """The scratch venv's supervisord, installed if need be; a reason string if it cannot be."""
    supervisord = VENV / "bin" / "supervisord"
    if supervisord.exists():
        return supervisord
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", SPEC],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return (
            f"could not install {SPEC} into {VENV}: {exc} {detail.decode(errors='replace')[-200:]}"
        )
    return supervisord


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path)


def config(directory: Path, count: int) -> Path:
    sock = directory / "supervisor.sock"
    lines = [
        "[unix_http_server]",
        f"file={sock}",
        "[supervisord]",
        f"logfile={directory / 'supervisord.log'}",
        f"pidfile={directory / 'supervisord.pid'}",
        f"childlogdir={directory}",
        "nodaemon=true",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for i in range(count):
        lines += [
            f"[program:p{i}]",
            "command=/bin/true",
            "autostart=false",
            "autorestart=false",
            "startsecs=0",
            "exitcodes=0",
        ]
    path = directory / "supervisord.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def time_start_all(supervisord: Path, directory: Path, count: int) -> float:
    """Seconds from ``startAllProcesses`` to every program exited."""
    conf = config(directory, count)
    proc = subprocess.Popen(
        [str(supervisord), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server: Any = xmlrpc.client.ServerProxy(
            "http://localhost", transport=_UnixTransport(str(directory / "supervisor.sock"))
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if server.supervisor.getState()["statename"] == "RUNNING":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("supervisord did not come up")
            time.sleep(0.02)
        began = time.perf_counter()
        server.supervisor.startAllProcesses(False)
        while True:
            states = [info["statename"] for info in server.supervisor.getAllProcessInfo()]
            if all(state == "EXITED" for state in states):
                return time.perf_counter() - began
            if time.perf_counter() - began > 60:
                raise AssertionError(f"supervisord programs did not all exit: {set(states)}")
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(30)
