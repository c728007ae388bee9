"""The command line as a new user meets it: in pipes, without a browser, after a file went away.

Every command here runs as a real subprocess against a real daemon (or a stand-in that answers
like a daemon of another version), with stdout and stderr on real pipes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aios.runtime import RuntimeInfo, write
from tests.helpers import (
    DaemonProcess,
    EventCollector,
    agent_script,
    aios_env,
    require_tool,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.daemon

CHATTY = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)\n"


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(
        home,
        f"[agents.chatty]\ncommand = {agent_script(scripts, 'chatty', CHATTY, prompt=False)}\n"
        "stop_timeout = 2\n",
    )
    d = start_daemon(home)
    try:
        yield d
    finally:
        d.close()


def finished_runs(d: DaemonProcess, count: int) -> None:
    events = EventCollector(d.port, d.info.token)
    try:
        for i in range(count):
            run = d.client.request("POST", "/api/runs", {"agent": "command", "prompt": f": {i}"})
            run_id = run["id"]

            def ended(kind: str, data: dict[str, str], run_id: str = run_id) -> bool:
                return kind == "run" and data["id"] == run_id and data["state"] == "succeeded"

            events.wait(ended)
    finally:
        events.close()


def pipe_to_head(home: Path, tmp_path: Path, *args: str) -> tuple[list[str], int, str]:
    """``aios ARGS | head -1`` in bash: what head printed, aios's exit code, aios's stderr."""
    bash = require_tool("bash")
    require_tool("head")
    err = tmp_path / "aios-stderr"
    script = f'"$AIOS_PY" -m aios "$@" 2>{err} | head -1; echo "${{PIPESTATUS[0]}}"'
    result = subprocess.run(
        [bash, "-c", script, "bash", *args],
        env={**aios_env(home), "AIOS_PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    *printed, code = result.stdout.splitlines()
    return printed, int(code), err.read_text()


def test_ps_into_a_pipe_nobody_reads_ends_quietly(served: DaemonProcess) -> None:
    finished_runs(served, 3)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before aios writes a byte: every write is EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aios", "ps", "--all"],
            env=aios_env(served.home),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports `yes | head -1`


def test_ps_piped_to_head(served: DaemonProcess, tmp_path: Path) -> None:
    """The issue's own command line; whether the pipe closes in time is up to the scheduler."""
    finished_runs(served, 3)
    printed, code, err = pipe_to_head(served.home, tmp_path, "ps", "--all")
    assert len(printed) == 1 and printed[0].startswith("ID ")
    assert code in (0, 141)
    assert err == ""


def test_run_wait_piped_to_head_ends_quietly_and_the_run_goes_on(
    served: DaemonProcess, tmp_path: Path
) -> None:
    printed, code, err = pipe_to_head(served.home, tmp_path, "run", "chatty", "--wait")
    assert err == ""
    # head left after the run id; the agent never stops printing, so aios met the closed pipe.
    assert code == 141
    [run_id] = printed
    run = served.client.request("GET", f"/api/runs/{run_id}")
    assert run["state"] in ("starting", "running")  # following a run is not owning it
    served.client.request("POST", f"/api/runs/{run_id}/stop")


class StandIn(BaseHTTPRequestHandler):
    """Answers like a daemon of another version: /api/runs is not a list of runs."""

    def do_GET(self) -> None:
        body = {"pid": os.getpid()} if self.path == "/api/status" else [1, 2]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_internal_error_is_one_line_and_the_traceback_is_where_it_says(home: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        write(
            home / "run" / "aios.json",
            RuntimeInfo(os.getpid(), port, f"http://127.0.0.1:{port}/", "t", "9.9", "now"),
        )
        result = run_cli(home, "ps")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    log_file = home / "state" / "aios.log"
    [line] = result.stderr.splitlines()
    assert line.startswith("aios: internal error: ")
    assert line.endswith(f"(details in {log_file})")
    assert result.stdout == ""
    text = log_file.read_text()
    assert "aios ps: unexpected error" in text and "Traceback" in text
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_open_without_a_browser_says_so_once(served: DaemonProcess) -> None:
    result = run_cli(served.home, "open", BROWSER="")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    page = served.home / "run" / f"open-{served.port}.html"
    assert line == (
        "aios: no browser could be opened (no display, and BROWSER is not set); "
        f"open {page.as_uri()} in a browser on this machine, "
        "or run `aios open --print` for an address to paste into one"
    )


def test_a_deleted_runtime_file_comes_back(served: DaemonProcess) -> None:
    before = served.runtime_file.read_text()
    served.runtime_file.unlink()
    result = run_cli(served.home, "status")  # waits for the daemon, which holds the lock
    assert result.returncode == 0, result.stderr
    assert f"running at http://127.0.0.1:{served.port}/" in result.stdout
    assert served.runtime_file.read_text() == before
    assert stat.S_IMODE(served.runtime_file.stat().st_mode) == 0o600
    shutil.rmtree(served.home / "run")  # the whole directory, lock file and all
    lock = served.home / "run" / "aios.lock"
    wait_until(lambda: served.runtime_file.exists() and lock.exists(), what="both restored")
    assert run_cli(served.home, "ps").returncode == 0
    second = run_cli(served.home, "serve", "--no-browser")  # the lock holds again
    assert second.returncode == 0 and "already running" in second.stderr
    assert run_cli(served.home, "stop").returncode == 0
    assert served.finish() == 0
    assert not served.runtime_file.exists()  # removed on exit, and not brought back


def test_lock_held_without_a_runtime_file_is_not_called_not_running(home: Path) -> None:
    from aios.runtime import InstanceLock

    (home / "run").mkdir(mode=0o700)
    lock = InstanceLock(home / "run" / "aios.lock")  # held by this process, as by a daemon
    assert lock.try_acquire()
    try:
        result = run_cli(home, "status")
    finally:
        lock.release()
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "holds" in line and "aios.json is missing" in line
