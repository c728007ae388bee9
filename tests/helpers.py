"""Shared test helpers: starting real daemons, polling for conditions, CI strictness."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The daemon and event-stream helpers live in tests/harness.py (the benchmark uses them too, and
# runs without pytest); re-exported here so tests keep one place to import from.
from tests.harness import (
    CREDENTIALS,
    DaemonProcess,
    EventCollector,
    agent_script,
    aios_env,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

__all__ = [
    "AGENT_CLIS",
    "CREDENTIALS",
    "FAKES",
    "IN_CI",
    "DaemonProcess",
    "EventCollector",
    "agent_script",
    "aios_env",
    "end_process",
    "fake_agents",
    "free_port",
    "pids_alive",
    "require",
    "require_tool",
    "run_cli",
    "start_daemon",
    "wait_until",
    "write_config",
]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
FAKES = Path(__file__).resolve().parent / "fakes"
AGENT_CLIS = ("claude", "codex", "gemini", "aider")


def fake_agents(directory: Path, *names: str) -> Path:
    """Executables named like the agent CLIs in ``directory``, running tests/fakes/agent.py
    with this Python; returns the directory, for the front of a PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names or AGENT_CLIS:
        path = directory / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "agent.py"}" {name} "$@"\n')
        path.chmod(0o755)
    return directory


def free_port() -> int:
    """A loopback port nothing listens on now (for a program that must be told its port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def end_process(process: subprocess.Popen[Any], grace: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not gone within ``grace`` seconds; reaped either way."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


def pids_alive(pids: list[int]) -> list[int]:
    import psutil

    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive
