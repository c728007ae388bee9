"""What the command line prints about runs, read the way a user's shell reads it.

Every ``aios`` here is a real subprocess of a real daemon, its stdout a real pipe (what a script,
``| less`` or ``> file`` gets) or a real terminal (a pty from the ``pty`` module), its stderr a
pipe; the agents are real processes (the fake CLIs of tests/fakes and ``sh``).
"""

from __future__ import annotations

import json
import os
import pty
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest

from aios.follow import Plain
from tests.fakeagents import Fakes
from tests.harness import readline
from tests.helpers import DaemonProcess, aios_env, run_cli

pytestmark = pytest.mark.daemon

# A command-line agent's output with escape codes of every kind: colours (SGR), a window title
# (OSC), a hyperlink (OSC 8), a cursor move and an erase (CSI), a charset switch, a bell, and a
# progress line that overwrites itself with carriage returns.
ESCAPES = (
    r"printf '\033]0;title\007\033[1;31mred\033[0m plain\n"
    r"\033]8;;https://example.org\033\\link\033]8;;\033\\ \033[2K\033[1Gdone\a\n"
    r"\033(B10%%\r50%%\r100%%\n'"
)
ESCAPES_PLAIN = "red plain\nlink done\n10%\r50%\r100%\n"


@dataclass
class Terminal:
    """What a command printed on a terminal (a pty), and on its stderr pipe."""

    out: bytes
    err: str
    code: int


def in_a_terminal(home: Any, *args: str, **env: str) -> Terminal:
    """``aios ARGS`` with stdout on a pty, as a user at a terminal runs it."""
    environment = {k: v for k, v in aios_env(home).items() if k != "NO_COLOR"}
    environment.update(env)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios", *args],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        selector.register(controller, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the command ended and closed its side of the terminal
                break
            if not data:
                break
            chunks.append(data)
    os.close(controller)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = proc.wait(timeout=30)
    # The terminal writes "\n" as "\r\n" (onlcr): back to what the command wrote.
    return Terminal(b"".join(chunks).replace(b"\r\n", b"\n"), err, code)


def piped(home: Any, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``aios ARGS`` with stdout on a pipe, read as the bytes it wrote (``run_cli`` reads text,
    which turns carriage returns into newlines)."""
    return subprocess.run(
        [sys.executable, "-m", "aios", *args],
        env=aios_env(home),
        capture_output=True,
        timeout=60,
        check=False,
    )


def run_of(d: DaemonProcess, run_id: str) -> dict[str, Any]:
    run = d.client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


# -- a failed run's hint ------------------------------------------------------------------------


def test_a_failed_runs_hint_is_on_stderr_after_its_output_and_ps_marks_it(fakes: Fakes) -> None:
    fakes.configure(claude="claude-not-logged-in")
    fakes.start()
    cwd = str(fakes.workdir)
    ran = run_cli(fakes.home, "run", "claude", "--wait", "--", "write hello.py", cwd=cwd)
    assert ran.returncode == 1, ran.stderr
    run_id = ran.stdout.splitlines()[0]
    run = run_of(fakes.d, run_id)
    assert run["state"] == "failed" and run["error"] and run["hint"]
    told = [f"aios: run {run_id} failed: {run['error']}", f"hint: {run['hint']}"]
    assert ran.stderr.splitlines() == told
    assert "/login" in told[1]

    logs = run_cli(fakes.home, "logs", run_id[:6])
    assert logs.returncode == 0
    assert logs.stdout == ran.stdout.split("\n", 1)[1]  # the same output as it was followed
    assert logs.stderr.splitlines() == told

    followed = run_cli(fakes.home, "logs", "-f", run_id)
    assert followed.returncode == 0 and followed.stderr.splitlines() == told

    cont = run_cli(fakes.home, "continue", run_id, "--wait", "--", "try again", cwd=cwd)
    assert cont.returncode == 1
    new_id = cont.stdout.splitlines()[0]
    new = run_of(fakes.d, new_id)
    assert new["parent"] == run_id
    assert cont.stderr.splitlines() == [
        f"aios: run {new_id} failed: {new['error']}",
        f"hint: {new['hint']}",
    ]

    ps = run_cli(fakes.home, "ps", "--all")
    assert ps.returncode == 0
    rows = {line.split()[0]: line for line in ps.stdout.splitlines()[1:]}
    header = ps.stdout.splitlines()[0]
    for marked in (run_id, new_id):
        assert rows[marked][header.index("ACTIVITY") :].startswith("! "), rows[marked]
    assert ps.stderr.splitlines() == [
        "aios: ! marks a run with a hint on what to do: `aios logs RUN` prints it"
    ]
    as_json = json.loads(run_cli(fakes.home, "ps", "--all", "--json").stdout)
    assert {r["id"]: r["hint"] for r in as_json}[run_id] == run["hint"]


def test_a_run_that_succeeds_says_nothing_more(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    ran = run_cli(fakes.home, "run", "command", "--wait", "--", "echo hello")
    assert (ran.returncode, ran.stderr) == (0, "")
    run_id, printed = ran.stdout.splitlines()
    assert printed == "hello"
    logs = run_cli(fakes.home, "logs", run_id)
    assert (logs.stdout, logs.stderr) == ("hello\n", "")
    ps = run_cli(fakes.home, "ps", "--all")
    assert "!" not in ps.stdout and ps.stderr == ""


# -- colour --------------------------------------------------------------------------------------


def test_no_escape_codes_into_a_pipe_unless_asked(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    ran = piped(fakes.home, "run", "command", "--wait", "--", ESCAPES)
    assert ran.returncode == 0, ran.stderr
    run_id, printed = ran.stdout.decode().split("\n", 1)
    assert printed == ESCAPES_PLAIN
    raw = fakes.d.client.request_bytes("GET", f"/api/runs/{run_id}/log")
    assert b"\x1b[1;31m" in raw and b"\x1b]8;;" in raw  # the log keeps what the agent wrote

    for args in (["logs", run_id], ["logs", "-f", run_id], ["logs", "--color=never", run_id]):
        logs = piped(fakes.home, *args)
        assert (logs.returncode, logs.stdout) == (0, ESCAPES_PLAIN.encode()), args
    assert piped(fakes.home, "logs", "--color", "always", run_id).stdout == raw
    again = run_cli(fakes.home, "run", "command", "--color=always", "--wait", "--", ESCAPES)
    assert "\x1b[1;31mred" in again.stdout

    # A structured agent's transcript is styled by AIOS itself: plain in a pipe too.
    claude = run_cli(fakes.home, "run", "claude", "--wait", "--", "write hello.py")
    assert claude.returncode == 0, claude.stderr
    assert "● Write(hello.py)" in claude.stdout and "\x1b" not in claude.stdout
    claude_id = claude.stdout.splitlines()[0]
    assert b"\x1b[" in fakes.d.client.request_bytes("GET", f"/api/runs/{claude_id}/log")
    cont = run_cli(fakes.home, "continue", claude_id, "--wait", "--", "and a test")
    assert cont.returncode == 0, cont.stderr
    assert "●" in cont.stdout and "\x1b" not in cont.stdout


def test_colour_on_a_terminal_unless_no_color_or_never(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    run_id = run_cli(fakes.home, "run", "command", "--", ESCAPES).stdout.strip()
    fakes.final(run_id)
    raw = fakes.d.client.request_bytes("GET", f"/api/runs/{run_id}/log")

    coloured = in_a_terminal(fakes.home, "logs", run_id)
    assert (coloured.code, coloured.err) == (0, "")
    assert coloured.out == raw.replace(b"\r\n", b"\n")
    assert b"\x1b[1;31mred" in coloured.out
    # NO_COLOR set to anything but "" turns colour off (https://no-color.org); --color wins.
    assert in_a_terminal(fakes.home, "logs", run_id, NO_COLOR="").out == coloured.out
    for args, env in (
        (["logs", run_id], {"NO_COLOR": "1"}),
        (["logs", "--color=never", run_id], {}),
    ):
        plain = in_a_terminal(fakes.home, *args, **env)
        assert (plain.code, plain.out) == (0, ESCAPES_PLAIN.encode()), (args, env)
    forced = in_a_terminal(fakes.home, "logs", "--color=always", run_id, NO_COLOR="1")
    assert forced.out == coloured.out

    ran = in_a_terminal(fakes.home, "run", "claude", "--wait", "--", "write hello.py")
    assert ran.code == 0, ran.err
    assert b"\x1b[" in ran.out and "● Write(hello.py)".encode() in ran.out
    bad = run_cli(fakes.home, "logs", "--color=sometimes", run_id)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "invalid choice: 'sometimes'" in bad.stderr


def test_plain_output_is_the_same_however_it_is_cut() -> None:
    """Chunks from the log endpoint may end inside an escape sequence or a UTF-8 character."""
    data = "\x1b]0;t\x07\x1b[38;2;255;135;0m→ ok\x1b[0m ✓\r\n".encode() + b"\xff raw\n"
    whole = Plain()
    expected = whole.feed(data) + whole.end()
    assert expected == "→ ok ✓\r\n".encode() + b"\xff raw\n"  # bytes not UTF-8 kept as they were
    for size in (1, 2, 3, 5):
        cut = Plain()
        pieces = [cut.feed(data[i : i + size]) for i in range(0, len(data), size)]
        assert b"".join(pieces) + cut.end() == expected, size
    ended = Plain()
    assert ended.feed(b"text\x1b[3") + ended.end() == b"text"  # cut off by the end of the log


# -- options after "--", unknown options ----------------------------------------------------------


def test_an_aios_option_after_dashes_is_prompt_with_a_warning(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    ran = run_cli(fakes.home, "run", "command", "--", "echo x", "--wait")
    assert ran.returncode == 0
    assert ran.stderr.splitlines() == [
        "aios: warning: '--wait' after '--' is part of the prompt; put AIOS options before '--'"
    ]
    run_id = ran.stdout.strip()  # only the id: it did not wait
    assert run_of(fakes.d, run_id)["prompt"] == "echo x --wait"
    assert fakes.final(run_id)["state"] == "succeeded"

    # A help flag is a fine prompt (`ls -h`): no warning.
    quiet = run_cli(fakes.home, "run", "command", "--wait", "--", "ls", "-h")
    assert quiet.returncode == 0 and quiet.stderr == ""

    # Without "--", options go anywhere around the prompt: the README's examples.
    for args in (["echo hi", "--wait"], ["--wait", "echo hi"], ["echo", "--wait", "hi"]):
        result = run_cli(fakes.home, "run", "command", *args)
        assert (result.returncode, result.stderr) == (0, ""), args
        assert result.stdout.splitlines()[1:] == ["hi"], args


def test_an_unknown_option_suggests_dashes_and_starts_nothing(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    cases = {
        ("run", "claude", "--foo", "bar"): (
            "aios: unrecognized argument --foo; to pass it in the prompt, put it after '--': "
            "aios run claude -- --foo bar"
        ),
        ("run", "command", "--wait", "ls", "-l", "--all", "x y"): (
            "aios: unrecognized arguments -l, --all; to pass them in the prompt, put them "
            "after '--': aios run command --wait -- ls -l --all 'x y'"
        ),
        ("continue", "abc123", "--verbose"): (
            "aios: unrecognized argument --verbose; to pass it in the prompt, put it after "
            "'--': aios continue abc123 -- --verbose"
        ),
    }
    for args, line in cases.items():
        result = run_cli(fakes.home, *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr.splitlines() == [line]
    assert fakes.d.client.request("GET", "/api/runs") == []  # nothing started
    # The suggestion works as written.
    taken = run_cli(fakes.home, "run", "claude", "--", "--foo", "bar", cwd=str(fakes.workdir))
    assert taken.returncode == 0 and taken.stderr == ""
    assert run_of(fakes.d, taken.stdout.strip())["prompt"] == "--foo bar"


# -- signals ------------------------------------------------------------------------------------


def test_signal_deaths_are_named(fakes: Fakes) -> None:
    fakes.configure()
    d = fakes.start()
    follower = subprocess.Popen(
        [sys.executable, "-m", "aios", "run", "command", "--wait", "--", "echo up; sleep 60"],
        env=aios_env(fakes.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    run_id = readline(follower.stdout, timeout=60).strip()
    assert readline(follower.stdout, timeout=60) == "up\n"  # it runs: stop it
    assert run_cli(fakes.home, "kill", run_id).returncode == 0
    rest, err = follower.communicate(timeout=60)
    assert rest == ""  # nothing after its "up"
    assert follower.returncode == 128 + 15  # as a shell reports a death by SIGTERM
    assert err.splitlines() == [f"aios: run {run_id} stopped (killed by SIGTERM)"]
    stopped = run_of(d, run_id)
    assert (stopped["state"], stopped["exit_code"], stopped["exit_signal"]) == (
        "stopped",
        -15,
        "SIGTERM",
    )

    killed = run_cli(fakes.home, "run", "command", "--wait", "--", "kill -KILL $$")
    assert killed.returncode == 128 + 9
    killed_id = killed.stdout.splitlines()[0]
    run = run_of(d, killed_id)
    assert (run["state"], run["exit_code"], run["exit_signal"]) == ("failed", -9, "SIGKILL")
    assert killed.stderr.splitlines()[0] == f"aios: run {killed_id} failed (killed by SIGKILL)"

    exited = run_cli(fakes.home, "run", "command", "--wait", "--", "exit 3")
    assert exited.returncode == 3
    exited_id = exited.stdout.strip()
    assert run_of(d, exited_id)["exit_signal"] is None
    assert exited.stderr.splitlines() == [f"aios: run {exited_id} failed (exit code 3)"]

    ps = run_cli(fakes.home, "ps", "--all")
    header, *lines = ps.stdout.splitlines()
    exit_at = header.index("EXIT")
    exits = {line.split()[0]: line[exit_at:].split()[0] for line in lines}
    assert exits == {run_id: "SIGTERM", killed_id: "SIGKILL", exited_id: "3"}

    # The dashboard's exit column and the run page, as the server renders them.
    overview = d.client.request_bytes("GET", "/?filter=all").decode()
    assert 'data-label="Exit">SIGTERM</td>' in overview
    assert 'data-label="Exit">SIGKILL</td>' in overview
    assert 'data-label="Exit">3</td>' in overview
    page = d.client.request_bytes("GET", f"/runs/{run_id}").decode()
    assert "<dt>Exit code</dt><dd>SIGTERM</dd>" in page


# -- empty run ids ------------------------------------------------------------------------------


def test_an_empty_run_id_is_a_usage_error(daemon: DaemonProcess) -> None:
    for args in (["logs", ""], ["logs", "-f", "  "], ["kill", ""], ["continue", "", "more"]):
        result = run_cli(daemon.home, *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        [line] = result.stderr.splitlines()
        assert line == (
            f"aios {args[0]}: error: argument run: must not be empty: give a run id or a "
            f"prefix of one (see `aios {args[0]} --help`)"
        )
    # An id that names no run is the daemon's to answer; one with slashes names no other path.
    missing = run_cli(daemon.home, "kill", "nope")
    assert (missing.returncode, missing.stderr) == (1, "aios: no run matches 'nope'\n")
    for ref in ("../../shutdown", "x?state=running"):
        odd = run_cli(daemon.home, "kill", ref)
        assert odd.returncode == 1 and len(odd.stderr.splitlines()) == 1, ref
    assert daemon.proc.poll() is None
