"""The presets in a terminal, on a real daemon (docs/agents.md, "In a terminal"): each CLI is
started in its interactive interface with the run's permission flags and the prompt as its
first message, and aider's chat, which has no option for one, gets the prompt typed in.

The CLIs are stand-ins named like them on the daemon's PATH: each says the arguments it got and
what it reads from its terminal, which is all this is about (tests/test_config.py checks the
argv of each preset; test_real_agents.py runs the real CLIs).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeagents import final_run
from tests.helpers import DaemonProcess, start_daemon, write_config

pytestmark = pytest.mark.daemon

# Prints its arguments as JSON and whether it has a terminal; aider's then reads its chat's
# first line from the terminal, as aider's chat does.
STAND_IN = """#!/bin/sh
"{python}" -c 'import json, sys; print("argv", json.dumps(sys.argv[1:]))' "$@"
[ -t 0 ] && echo "on a terminal"
"""
READS = """IFS= read -r line
echo "read: $line"
"""


@pytest.fixture
def d(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini", "aider"):
        script = bin_dir / name
        script.write_text(
            STAND_IN.format(python=sys.executable) + (READS if name == "aider" else "")
        )
        script.chmod(0o755)
    (tmp_path / "work").mkdir()
    write_config(home, "")
    daemon = start_daemon(home, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    try:
        yield daemon
    finally:
        daemon.terminate()


def run_in_terminal(d: DaemonProcess, agent: str, prompt: str, tmp_path: Path) -> list[str]:
    """Launch ``agent`` in a terminal with a read-only permission; the lines its terminal
    showed, once it has ended."""
    body = {
        "agent": agent,
        "prompt": prompt,
        "cwd": str(tmp_path / "work"),
        "terminal": True,
        "permission": "read-only",
    }
    run = d.client.request("POST", "/api/runs", body)
    assert isinstance(run, dict) and run["terminal"] is True
    ended = final_run(d, run["id"], timeout=30)
    log = d.client.request_bytes("GET", f"/api/runs/{run['id']}/log").decode()
    assert ended["state"] == "succeeded", log
    return [line.rstrip("\r") for line in log.splitlines()]


@pytest.mark.parametrize(
    ("agent", "argv"),
    [
        ("claude", ["--permission-mode", "plan", "--", "-n: first"]),
        ("codex", ["--sandbox", "read-only", "--", "-n: first"]),
        ("gemini", ["--skip-trust", "--approval-mode", "plan", "--prompt-interactive=-n: first"]),
    ],
)
def test_a_preset_in_a_terminal_gets_the_prompt_on_its_command_line(
    d: DaemonProcess, tmp_path: Path, agent: str, argv: list[str]
) -> None:
    lines = run_in_terminal(d, agent, "-n: first", tmp_path)
    assert f"argv {json.dumps(argv)}" in lines
    assert "on a terminal" in lines


def test_aider_in_a_terminal_has_its_prompt_typed_into_its_chat(
    d: DaemonProcess, tmp_path: Path
) -> None:
    lines = run_in_terminal(d, "aider", "fix the flaky test", tmp_path)
    assert (
        "argv " + json.dumps(["--no-analytics", "--no-check-update", "--dry-run", "--yes-always",
                              "--no-suggest-shell-commands"])
    ) in lines  # fmt: skip
    assert "on a terminal" in lines
    assert "read: fix the flaky test" in lines  # its first message, typed in
