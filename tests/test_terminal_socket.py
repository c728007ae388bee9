"""A terminal run's WebSocket on a real daemon, with a real WebSocket client: its protections
(sign-in, Host, Origin, runs without a terminal, ended runs, bad frames) and what it is for
(typing into a program, resizing it, a late viewer seeing the screen, the final screen kept)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import psutil
import pytest

from aios.wsclient import Refused
from tests.harness import DaemonProcess, EventCollector, run_cli, start_daemon, wait_until
from tests.terminals import (
    Viewer,
    launch,
    open_socket,
    session_cookie,
    start_terminal_daemon,
    state_of,
)

pytestmark = pytest.mark.daemon


def refused(
    daemon: DaemonProcess, run_id: str, headers: list[tuple[str, str]], **kw: str
) -> Refused:
    with pytest.raises(Refused) as caught:
        open_socket(daemon, run_id, headers, **kw).close()
    return caught.value


def test_typing_into_a_program_and_seeing_its_answer(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    run_id = launch(daemon, "ask")
    assert daemon.client.request("GET", f"/api/runs/{run_id}")["terminal"] is True
    viewer = Viewer(open_socket(daemon, run_id))
    assert viewer.first["input"] is True
    viewer.wait_for("name?")
    viewer.type("Ada\r")
    viewer.wait_for("hello Ada")
    # Resize: the kernel tells the program (SIGWINCH), which asks its terminal (stty size).
    viewer.socket.send({"type": "resize", "cols": 72, "rows": 20})
    viewer.wait_for("size: 20 72")
    # A second viewer, late: the current screen at once, not a replay; and told of resizes.
    late = Viewer(open_socket(daemon, run_id))
    assert (late.first["cols"], late.first["rows"]) == (72, 20)
    assert any("hello Ada" in row for row in late.screen.text())
    late.socket.send({"type": "resize", "cols": 80, "rows": 24})
    assert viewer.wait_message("resized") == {"type": "resized", "cols": 80, "rows": 24}
    viewer.wait_for("size: 24 80")
    late.type("quit\r")
    ended = viewer.wait_message("ended")
    assert ended == {"type": "ended", "state": "succeeded", "exit_code": 0}
    assert late.wait_message("ended")["state"] == "succeeded"
    wait_until(
        lambda: viewer.take() is None and viewer.socket.closed, what="the server to close it"
    )
    assert viewer.socket.close_code == 1000
    viewer.close()
    late.close()
    # The log has the output as the terminal got it.
    log = daemon.client.request("GET", f"/api/runs/{run_id}/log")
    assert "hello Ada" in log


def test_an_ended_run_shows_its_final_screen_read_only(
    terminal_daemon: DaemonProcess, home: Path
) -> None:
    daemon = terminal_daemon
    run_id = launch(daemon, "ask")
    viewer = Viewer(open_socket(daemon, run_id))
    viewer.wait_for("name?")
    viewer.type("Grace\r")
    viewer.wait_for("hello Grace")
    viewer.type("quit\r")
    viewer.wait_message("ended")
    viewer.close()
    wait_until(lambda: state_of(daemon, run_id) == "succeeded", what="the run to end")
    found = wait_until(lambda: list(home.rglob(f"{run_id}.screen.json")), what="the screen file")
    screen_file = found[0]
    assert screen_file.stat().st_mode & 0o777 == 0o600
    ended = Viewer(open_socket(daemon, run_id))
    assert ended.first["input"] is False and ended.first["state"] == "succeeded"
    assert any("hello Grace" in row for row in ended.screen.text())
    ended.type("more\r")
    assert "read-only" in ended.wait_message("error")["error"]
    # Stopping the daemon does not wait for a viewer of an ended run: it is told AIOS goes.
    daemon.terminate()
    wait_until(lambda: ended.take() is None and ended.socket.closed, what="the socket to close")
    assert ended.socket.close_code == 1001
    ended.close()
    # After a restart too: the screen was kept beside the log.
    again = start_daemon(home)
    try:
        after = Viewer(open_socket(again, run_id))
        assert after.first["input"] is False
        assert any("hello Grace" in row for row in after.screen.text())
        after.close()
    finally:
        again.close()


def test_sign_in_host_and_origin_are_checked(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    run_id = launch(daemon, "ask")
    token, origin = daemon.info.token, f"http://{daemon.base}"
    cookie = session_cookie(daemon)
    # No sign-in, a forged token, a forged cookie.
    assert refused(daemon, run_id, [("Origin", origin)]).status == 401
    bad_token = [("Authorization", "Bearer " + "0" * 43), ("Origin", origin)]
    assert refused(daemon, run_id, bad_token).status == 401
    name = cookie.split("=", 1)[0]
    assert refused(daemon, run_id, [("Cookie", f"{name}=forged"), ("Origin", origin)]).status == 401
    # A foreign Host (DNS rebinding), with a good token.
    foreign = refused(
        daemon, run_id, [("Authorization", f"Bearer {token}"), ("Origin", origin)],
        host_header=f"evil.example:{daemon.port}",
    )  # fmt: skip
    assert foreign.status == 403 and "not allowed" in foreign.error
    # Cross-site WebSocket hijacking: the browser sends the cookie, but the Origin is another's.
    for bad in ("http://evil.example", "null", f"http://127.0.0.1:{daemon.port + 1}"):
        hijack = refused(daemon, run_id, [("Cookie", cookie), ("Origin", bad)])
        assert hijack.status == 403 and "refused" in hijack.error
    missing = refused(daemon, run_id, [("Cookie", cookie)])
    assert missing.status == 403 and "no Origin" in missing.error
    cross = [("Cookie", cookie), ("Origin", origin), ("Sec-Fetch-Site", "cross-site")]
    assert refused(daemon, run_id, cross).status == 403
    # The browser's own: the cookie and the dashboard's Origin.
    viewer = Viewer(open_socket(daemon, run_id, [("Cookie", cookie), ("Origin", origin)]))
    assert viewer.first["input"] is True
    viewer.close()


def test_runs_without_a_terminal_are_refused(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    piped = launch(daemon, "piped")
    assert daemon.client.request("GET", f"/api/runs/{piped}")["terminal"] is False
    answer = refused(daemon, piped, [
        ("Authorization", f"Bearer {daemon.info.token}"), ("Origin", f"http://{daemon.base}"),
    ])  # fmt: skip
    assert (answer.status, answer.error) == (409, f"run {piped} has no terminal")
    missing = refused(daemon, "nosuchrun", [
        ("Authorization", f"Bearer {daemon.info.token}"), ("Origin", f"http://{daemon.base}"),
    ])  # fmt: skip
    assert missing.status == 404
    daemon.client.request("POST", f"/api/runs/{piped}/stop")


def test_bad_messages_are_answered_and_bounded(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    run_id = launch(daemon, "ask")
    viewer = Viewer(open_socket(daemon, run_id))
    viewer.wait_for("name?")
    socket = viewer.socket
    bad = [
        "not json",
        "[1, 2]",
        json.dumps({"type": "launch"}),
        json.dumps({"type": "input", "data": 5}),
        json.dumps({"type": "resize", "cols": 0, "rows": 10}),
        json.dumps({"type": "resize", "cols": 10, "rows": 501}),
        json.dumps({"type": "resize", "cols": True, "rows": 10}),
        json.dumps({"type": "input", "data": "x" * 70000}),
    ]
    for text in bad:
        socket.send_text(text)
        assert viewer.wait_message("error")["error"]
    socket.send_bytes(b"\x00\x01")
    assert "binary" in viewer.wait_message("error")["error"]
    # Still a working terminal after all that.
    viewer.type("Linus\r")
    viewer.wait_for("hello Linus")
    # A flood of garbage closes the socket (1008), and the run goes on.
    with contextlib.suppress(OSError):  # closed under the flood
        for _ in range(40):
            socket.send_text("garbage")
    wait_until(lambda: viewer.take() is None and socket.closed, what="the socket to close")
    assert socket.close_code == 1008
    viewer.close()
    assert state_of(daemon, run_id) in ("starting", "running")
    again = Viewer(open_socket(daemon, run_id))
    again.type("quit\r")
    again.wait_message("ended")
    again.close()


def test_terminal_launch_option_and_cli_flag(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    # The agent's setting is the default; the launch may say otherwise.
    run_id = launch(daemon, "ask", terminal=False)
    assert daemon.client.request("GET", f"/api/runs/{run_id}")["terminal"] is False
    daemon.client.request("POST", f"/api/runs/{run_id}/stop")
    with pytest.raises(Exception, match="must be true or false"):
        launch(daemon, "ask", terminal="yes")
    # aios run --terminal / --no-terminal, whatever the agent says.
    for flag, agent, expected in (("--terminal", "piped", True), ("--no-terminal", "ask", False)):
        result = run_cli(daemon.home, "run", agent, flag)
        assert result.returncode == 0, result.stderr
        run = daemon.client.request("GET", f"/api/runs/{result.stdout.strip()}")
        assert (run["terminal"], run["format"]) == (expected, "text")
        daemon.client.request("POST", f"/api/runs/{run['id']}/stop")


def test_a_program_waiting_for_its_user_calls_for_attention(terminal_daemon: DaemonProcess) -> None:
    """Quiet, and blocked reading its terminal (found in /proc): awaiting_input, with an
    attention event; typing an answer makes it work again."""
    daemon = terminal_daemon
    events = EventCollector(daemon.port, daemon.info.token)
    try:
        run_id = launch(daemon, "ask")
        _, attention = events.wait(
            lambda kind, data: kind == "attention" and data["run"] == run_id, timeout=30
        )
        assert attention["reason"] == "awaiting_input"
        assert attention["message"] == "ask is waiting for your input in its terminal"
        run = daemon.client.request("GET", f"/api/runs/{run_id}")
        assert run["activity"] == "awaiting_input"
        viewer = Viewer(open_socket(daemon, run_id))
        viewer.type("Ada\r")
        viewer.wait_for("hello Ada")
        events.wait(
            lambda kind, data: (
                kind == "run" and data["id"] == run_id and data["activity"] == "working"
            )
        )
        # And waiting again (its loop reads the next line); the one who typed is there: the
        # activity says so, and no call is made (tests/test_run_hearing.py has the rule).
        events.wait(
            lambda kind, data: (
                kind == "run" and data["id"] == run_id and data["activity"] == "awaiting_input"
            )
        )
        viewer.type("quit\r")
        viewer.wait_message("ended")
        viewer.close()
    finally:
        events.close()


def test_a_run_the_daemon_died_under_shows_the_end_of_its_output(
    home: Path, tmp_path: Path
) -> None:
    daemon = start_terminal_daemon(home, tmp_path)
    try:
        run_id = launch(daemon, "ask")
        viewer = Viewer(open_socket(daemon, run_id))
        viewer.wait_for("name?")
        viewer.close()
        # A viewer is sent what was read before the log has it on disk: the test kills the
        # daemon once the log has it (what was read and not yet written dies with it).
        log_path = f"/api/runs/{run_id}/log"
        wait_until(lambda: "name?" in daemon.client.request_bytes("GET", log_path).decode())
    finally:
        daemon.close()  # SIGKILL: no final screen kept
    again = start_daemon(home)
    try:
        assert state_of(again, run_id) == "interrupted"
        after = Viewer(open_socket(again, run_id))
        assert after.first["input"] is False and after.first["state"] == "interrupted"
        assert any("name?" in row for row in after.screen.text())
        after.close()
    finally:
        again.close()


def test_a_terminal_run_leaves_nothing_behind(terminal_daemon: DaemonProcess) -> None:
    """Stopped, or its daemon killed: the program and the job it started in a group of its own
    are gone (SIGKILL after stop_timeout; the watchdog, which stops descendants too)."""
    daemon = terminal_daemon
    pids = []
    for _ in range(2):
        run_id = launch(daemon, "jobs")
        viewer = Viewer(open_socket(daemon, run_id))
        rows = viewer.wait_for(" ready")  # the whole line, whatever pieces it came in
        job = int(next(row for row in rows if row.startswith("job ")).split()[1])
        leader = int(daemon.client.request("GET", f"/api/runs/{run_id}")["pid"])
        viewer.close()
        pids.append((run_id, leader, job))
    stopped, leader, job = pids[0]
    daemon.client.request("POST", f"/api/runs/{stopped}/stop")
    wait_until(lambda: state_of(daemon, stopped) == "stopped", what="the run to stop")
    assert not pid_alive(leader) and not pid_alive(job)
    _, leader, job = pids[1]
    daemon.proc.kill()  # SIGKILL: the watchdog's turn
    daemon.finish()
    wait_until(lambda: not pid_alive(leader) and not pid_alive(job), what="the watchdog")


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
