"""``aios attach`` driven through a real pseudo-terminal, as a person's terminal would: the real
``aios attach`` process on the slave, the test typing and reading on the master."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from aios.agents.screen import Screen
from tests.harness import DaemonProcess, aios_env, run_cli, wait_until
from tests.terminals import Viewer, launch, open_socket, state_of

pytestmark = pytest.mark.daemon


class Attached:
    """``aios attach RUN`` on a pseudo-terminal of ``cols`` x ``rows``."""

    def __init__(self, daemon: DaemonProcess, run_id: str, cols: int = 90, rows: int = 25) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.cooked = termios.tcgetattr(slave)
        self.screen = Screen(cols, rows)
        self.raw = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aios", "attach", run_id],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=aios_env(daemon.home),
            start_new_session=True,
        )
        os.close(slave)

    def read(self, timeout: float = 0.2) -> bool:
        readable, _, _ = select.select([self.master], [], [], timeout)
        if not readable:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the process is gone and the slave closed
            return False
        text = data.decode("utf-8", errors="replace")
        self.raw += text
        self.screen.feed(text)
        return bool(data)

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.raw and not any(text in row for row in self.screen.text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never came; got {self.raw[-800:]!r}")
            if not self.read():
                raise AssertionError(f"aios attach ended before {text!r}; got {self.raw[-800:]!r}")

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(0.05)
        code = self.proc.wait(1)
        while self.read(0.05) and time.monotonic() < deadline + 1:
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


def test_attach_types_resizes_detaches_and_restores_the_terminal(
    terminal_daemon: DaemonProcess,
) -> None:
    daemon = terminal_daemon
    run_id = launch(daemon, "ask")
    attached = Attached(daemon, run_id)
    try:
        attached.wait_for("Ctrl-] detaches (the run keeps running)")  # said on stderr
        attached.wait_for(f"\x1b]2;aios attach {run_id}: Ctrl-] detaches\x07")  # and in the title
        attached.wait_for("name?")
        # Its size went to the program (SIGWINCH, then `stty size` in the program).
        attached.wait_for("size: 25 90")
        attached.type(b"Bob\r")
        attached.wait_for("hello Bob")
        attached.type(b"\x1d")  # Ctrl-]: detach
        assert attached.finish() == 0
        attached.wait_for("detached")
        attached.wait_for("\x1b[23;0t")  # the title given back
        # The terminal is as it was: cooked again (echo, canonical input).
        assert termios.tcgetattr(attached.master)[3] == attached.cooked[3]
    finally:
        attached.close()
    assert state_of(daemon, run_id) in ("starting", "running")
    # Back again: the screen as it is, and the run ends from here.
    again = Attached(daemon, run_id, cols=80, rows=24)
    try:
        again.wait_for("hello Bob")
        again.type(b"quit\r")
        assert again.finish() == 0
        again.wait_for("ended: succeeded (exit 0)")
        assert termios.tcgetattr(again.master)[3] == again.cooked[3]
    finally:
        again.close()
    wait_until(lambda: state_of(daemon, run_id) == "succeeded", what="the run to end")
    # An ended run: its final screen, exit 0.
    ended = run_cli(daemon.home, "attach", run_id)
    assert ended.returncode == 0, ended.stderr
    assert "hello Bob" in ended.stdout
    assert ended.stderr.strip() == f"aios: run {run_id} has ended (succeeded): its final screen"


def test_attach_refuses_a_run_without_a_terminal(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    piped = launch(daemon, "piped")
    result = run_cli(daemon.home, "attach", piped)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"aios: run {piped} has no terminal"]
    missing = run_cli(daemon.home, "attach", "zzzz")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    daemon.client.request("POST", f"/api/runs/{piped}/stop")


def test_attach_needs_a_terminal_for_a_live_run(terminal_daemon: DaemonProcess) -> None:
    daemon = terminal_daemon
    run_id = launch(daemon, "ask")
    result = run_cli(daemon.home, "attach", run_id)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "aios: aios attach needs a terminal: run it in one (stdin and stdout)"
    ]
    viewer = Viewer(open_socket(daemon, run_id))
    viewer.type("x\r")
    viewer.wait_for("hello x")
    viewer.type("quit\r")
    viewer.wait_message("ended")
    viewer.close()
