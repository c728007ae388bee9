from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeagents import Fakes
from tests.helpers import AGENT_CLIS, DaemonProcess, fake_agents, start_daemon


def pytest_configure(config: pytest.Config) -> None:
    """``AIOS_TEST_FAKE_AGENTS=1``: run everything with fake claude, codex, gemini and aider
    first on PATH (CI does), to show that no test depends on which agent CLIs are installed."""
    if os.environ.get("AIOS_TEST_FAKE_AGENTS") != "1":
        return
    directory = Path(tempfile.mkdtemp(prefix="aios-fake-agents-"))
    fake_agents(directory, *AGENT_CLIS)
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_report_header(config: pytest.Config) -> str:
    """Which agent CLIs the real-agents tier runs (tests/test_real_agents.py)."""
    from scripts.install_agents import BIN, installed, pins

    versions = ", ".join(f"{pin.cli} {pin.version}" for pin in pins())
    where = f"in {BIN}" if installed() else "not installed: `make agents`"
    return f"real agents: {versions} ({where})"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "aios-home"
    path.mkdir()
    return path


@pytest.fixture
def daemon(home: Path) -> Iterator[DaemonProcess]:
    proc = start_daemon(home)
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
def terminal_daemon(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon with a terminal agent ``ask`` and a piped one (tests/terminals.py)."""
    from tests.terminals import start_terminal_daemon

    daemon = start_terminal_daemon(home, tmp_path)
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def fakes(home: Path, tmp_path: Path) -> Iterator[Fakes]:
    """A daemon-to-be whose agent CLIs are the fakes (tests/fakeagents.py): configure, start."""
    made = Fakes(home, tmp_path)
    try:
        yield made
    finally:
        if made.daemon is not None:
            made.daemon.terminate()
