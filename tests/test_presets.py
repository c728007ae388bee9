"""The built-in presets, launched against stand-ins named like the real CLIs on a test PATH.

The stand-ins behave as the real CLIs do here without a login or network (tried once by hand
against the real ones; see docs/agents.md): claude exits 1, gemini exits 41, codex hangs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    DaemonProcess,
    EventCollector,
    pids_alive,
    run_cli,
    start_daemon,
    wait_until,
)

pytestmark = pytest.mark.daemon

STAND_INS = {
    "claude": 'echo "Not logged in · Please run /login" >&2\nexit 1\n',
    "gemini": 'echo "Please set an Auth method in your settings.json" >&2\nexit 41\n',
    # Like `codex exec --skip-git-repo-check` offline: reconnects forever, with a child process.
    "codex": 'echo "$$" > "$STANDIN_PID_FILE"\nsleep 300 &\necho $! >> "$STANDIN_PID_FILE"\n'
    'while true; do echo "stream error: reconnecting..."; sleep 0.2; done\n',
    "aider": 'for last; do :; done\necho "aider got: $last"\nexit 0\n',
}


@pytest.fixture
def with_stand_ins(home: Path, tmp_path: Path) -> Iterator[tuple[DaemonProcess, Path]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
    pid_file = tmp_path / "codex.pids"
    d = start_daemon(
        home,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        STANDIN_PID_FILE=str(pid_file),
    )
    try:
        yield d, pid_file
    finally:
        d.close()


def test_presets_show_the_cli_message_and_state(
    with_stand_ins: tuple[DaemonProcess, Path], tmp_path: Path
) -> None:
    d, _ = with_stand_ins
    agents = run_cli(d.home, "agents")
    for name in ("claude", "codex", "aider", "gemini", "command"):
        line = next(x for x in agents.stdout.splitlines() if x.startswith(name + " "))
        assert " yes " in line, line
    for agent, code, message in (
        ("claude", 1, "Not logged in"),
        ("gemini", 41, "Auth method"),
    ):
        result = run_cli(d.home, "run", agent, "say hi", "--wait", cwd=str(tmp_path))
        assert result.returncode == code, result.stderr
        assert message in result.stdout
        run = d.client.request("GET", f"/api/runs/{result.stdout.split()[0]}")
        assert run["state"] == "failed" and run["exit_code"] == code
    aider = run_cli(d.home, "run", "aider", "fix it", "--wait")
    assert aider.returncode == 0 and "aider got: --message=fix it" in aider.stdout


def test_hanging_codex_is_stopped_without_leftovers(
    with_stand_ins: tuple[DaemonProcess, Path],
) -> None:
    d, pid_file = with_stand_ins
    events = EventCollector(d.port, d.info.token)
    try:
        run = d.client.request("POST", "/api/runs", {"agent": "codex", "prompt": "say hi"})
        events.wait(lambda k, data: k == "log" and "reconnecting" in data["text"])
        pids = [int(p) for p in pid_file.read_text().split()]
        assert len(pids_alive(pids)) == 2
        d.client.request("POST", f"/api/runs/{run['id']}/stop")
        events.wait(lambda k, data: k == "run" and data["state"] == "stopped")
        wait_until(lambda: not pids_alive(pids), timeout=2, what="codex and its child to go")
    finally:
        events.close()
