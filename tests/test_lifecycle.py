"""Real ``aios serve`` subprocesses on port 0: announce, runtime file, single instance, signals."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest

from aios import __version__
from tests.helpers import DaemonProcess, run_cli, start_daemon, wait_until

pytestmark = pytest.mark.daemon


def raw_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        raw = response.read()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(raw) if is_json and raw else {}
    finally:
        conn.close()


def test_announces_port_then_serves(daemon: DaemonProcess) -> None:
    assert daemon.first_line == f"AIOS_PORT:{daemon.port}"
    status, body = raw_request(daemon.port, "GET", "/health", {"Host": daemon.base})
    assert status == 200
    assert body["status"] == "ok" and body["version"] == __version__


def test_runtime_file_is_private_and_complete(daemon: DaemonProcess) -> None:
    info = daemon.info
    assert info.pid == daemon.proc.pid and info.port == daemon.port
    assert info.url == f"http://127.0.0.1:{daemon.port}/"
    assert len(info.token) >= 43  # 256 bits, urlsafe base64
    assert stat.S_IMODE(daemon.runtime_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.runtime_file.parent.stat().st_mode) == 0o700


def test_forged_requests_over_real_http(daemon: DaemonProcess) -> None:
    token = daemon.info.token
    auth = {"Authorization": f"Bearer {token}"}
    assert raw_request(daemon.port, "GET", "/health", {"Host": "attacker.example"})[0] == 403
    # HTTP/1.1 without Host is refused by the protocol layer (h11) before our check: 400.
    assert raw_request(daemon.port, "GET", "/health", {})[0] in (400, 403)
    assert raw_request(daemon.port, "GET", "/api/status", {"Host": daemon.base})[0] == 401
    status, body = raw_request(
        daemon.port,
        "POST",
        "/api/shutdown",
        {"Host": daemon.base, "Origin": "http://evil.example", **auth},
    )
    assert status == 403 and "cross-origin" in str(body["error"])
    assert daemon.proc.poll() is None  # still running after the forged shutdown
    status, _ = raw_request(
        daemon.port,
        "POST",
        "/api/shutdown",
        {"Host": daemon.base, "Content-Type": "text/plain", **auth},
        b"{}",
    )
    assert status == 415
    status, _ = raw_request(
        daemon.port,
        "POST",
        "/api/shutdown",
        {"Host": daemon.base, "Content-Type": "application/json", **auth},
        b"x" * 70000,
    )
    assert status == 413
    assert daemon.proc.poll() is None


def test_second_instance_exits_zero_and_leaves_first_alone(daemon: DaemonProcess) -> None:
    second = run_cli(daemon.home, "serve", "--no-browser")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == daemon.info.url
    assert "already running" in second.stderr
    assert daemon.proc.poll() is None
    assert daemon.client.request("GET", "/api/status")["pid"] == daemon.proc.pid
    plain = run_cli(daemon.home, "--no-browser")
    assert plain.returncode == 0 and daemon.proc.poll() is None


def test_status_and_stop(daemon: DaemonProcess) -> None:
    status = run_cli(daemon.home, "status")
    assert status.returncode == 0, status.stderr
    assert daemon.info.url in status.stdout and str(daemon.proc.pid) in status.stdout
    stop = run_cli(daemon.home, "stop")
    assert stop.returncode == 0, stop.stderr
    assert daemon.finish(10) == 0
    assert not daemon.runtime_file.exists()
    after = run_cli(daemon.home, "status")
    assert after.returncode == 3
    assert after.stderr.count("\n") == 1 and "not running" in after.stderr
    assert run_cli(daemon.home, "stop").returncode == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_and_cleans_up(daemon: DaemonProcess, signum: int) -> None:
    daemon.proc.send_signal(signum)
    assert daemon.finish(10) == 0
    assert not daemon.runtime_file.exists()
    assert not (daemon.home / "run" / f"open-{daemon.port}.html").exists()
    assert "Traceback" not in daemon.err
    # The lock is free again: a new daemon starts in the same home.
    again = start_daemon(daemon.home)
    assert again.terminate() == 0


def test_stale_runtime_file_is_replaced(home: Path) -> None:
    run_dir = home / "run"
    run_dir.mkdir(mode=0o700)
    stale = {
        "pid": 2**22 + 12345,
        "port": 1,
        "url": "http://127.0.0.1:1/",
        "token": "old",
        "version": "0",
        "started_at": "2020-01-01T00:00:00+00:00",
    }
    (run_dir / "aios.json").write_text(json.dumps(stale))
    assert run_cli(home, "status").returncode == 3
    fresh = start_daemon(home)
    try:
        assert fresh.info.pid == fresh.proc.pid and fresh.info.token != "old"
    finally:
        fresh.close()


def test_malformed_runtime_file_does_not_block_start(home: Path) -> None:
    (home / "run").mkdir(mode=0o700)
    (home / "run" / "aios.json").write_text("{not json")
    assert run_cli(home, "status").returncode == 3
    fresh = start_daemon(home)
    assert fresh.terminate() == 0


def test_lock_held_by_unresponsive_process_is_an_error(home: Path) -> None:
    from aios.runtime import InstanceLock

    (home / "run").mkdir(mode=0o700)
    lock = InstanceLock(home / "run" / "aios.lock")
    assert lock.try_acquire()
    try:
        result = run_cli(home, "serve", "--no-browser")
    finally:
        lock.release()
    assert result.returncode == 1
    assert "holds" in result.stderr and "does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_clear_line(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(home, "serve", "--no-browser", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "run" / "aios.json").exists()


def test_fixed_port_is_honoured(home: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fixed = start_daemon(home, "--port", str(port))
    try:
        assert fixed.port == port
    finally:
        fixed.close()


def test_token_never_in_logs(daemon: DaemonProcess) -> None:
    token = daemon.info.token
    raw_request(daemon.port, "GET", f"/login?token={token}", {"Host": daemon.base})
    raw_request(daemon.port, "GET", f"/login?token={token}x", {"Host": daemon.base})
    assert daemon.terminate() == 0
    log_text = (daemon.home / "state" / "aios.log").read_text()
    assert "listening on" in log_text
    assert token not in log_text and token not in daemon.err


def test_open_goes_through_private_redirect_file(daemon: DaemonProcess, tmp_path: Path) -> None:
    record = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\necho "$1" > {record}\n')
    fake_browser.chmod(0o755)
    result = run_cli(daemon.home, "open", BROWSER=str(fake_browser))
    assert result.returncode == 0, result.stderr
    opened = wait_until(lambda: record.exists() and record.read_text().strip(), what="browser")
    token = daemon.info.token
    assert opened.startswith("file://") and token not in opened
    page = Path(opened.removeprefix("file://"))
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    text = page.read_text()  # a form that posts the token: it is in no address
    assert f"action='http://127.0.0.1:{daemon.port}/login'" in text
    assert f"name='token' value='{token}'" in text and "?token=" not in text


def test_usage_errors_are_one_line_exit_2(home: Path) -> None:
    for args in (
        ["frobnicate"],
        ["serve", "--port", "http"],
        ["serve", "--port", "70000"],
        ["--bogus"],
    ):
        result = run_cli(home, *args)
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_version_and_help(home: Path) -> None:
    version = run_cli(home, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"aios {__version__}"
    helped = run_cli(home, "--help")
    assert helped.returncode == 0
    for command in ("serve", "status", "open", "stop"):
        assert command in helped.stdout


def test_open_without_daemon_is_exit_3(home: Path) -> None:
    result = run_cli(home, "open")
    assert result.returncode == 3 and "not running" in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_listening_socket_is_loopback_only(daemon: DaemonProcess) -> None:
    import psutil

    conns = [c for c in psutil.Process(daemon.proc.pid).net_connections() if c.status == "LISTEN"]
    assert [(c.laddr.ip, c.laddr.port) for c in conns] == [("127.0.0.1", daemon.port)]
