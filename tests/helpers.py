"""Shared test helpers: starting real daemons, polling for conditions, CI strictness."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from aios.client import DaemonClient
from aios.runtime import RuntimeInfo

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip when a real part is missing on a developer machine; in CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed")
    assert path is not None
    return path


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def aios_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_")}
    env.update({"AIOS_HOME": str(home), "PYTHONUNBUFFERED": "1"}, **extra)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def run_cli(
    home: Path, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aios", *args],
        env=aios_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class DaemonProcess:
    """A real ``aios serve`` subprocess on an ephemeral port."""

    home: Path
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    out: str = ""
    err: str = ""

    @property
    def runtime_file(self) -> Path:
        return self.home / "run" / "aios.json"

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_json(self.runtime_file, json.loads(self.runtime_file.read_text()))

    @property
    def client(self) -> DaemonClient:
        return DaemonClient(self.info)

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def finish(self, timeout: float = 30) -> int:
        """Wait for the exit, collecting what is left of stdout and stderr."""
        out, err = self.proc.communicate(timeout=timeout)
        self.out += out or ""
        self.err += err or ""
        return self.proc.returncode

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish(10)


def start_daemon(home: Path, *args: str, **env: str) -> DaemonProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve", "--no-browser", *args],
        env=aios_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = _readline(proc.stdout, timeout=30)
    if not line.startswith("AIOS_PORT:"):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"daemon did not announce a port: {line!r}\n{err}")
    return DaemonProcess(home, proc, int(line.split(":", 1)[1]), line.rstrip("\n"))


def _readline(stream: IO[str], timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout:g} s")
    return stream.readline()
