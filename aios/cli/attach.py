"""``aios attach RUN``: this terminal, in raw mode, becomes the terminal of a terminal run.

It speaks the dashboard's WebSocket (docs/terminal.md) with the runtime file's token and the
daemon's own Origin: keys go to the program, its output comes here, and this terminal's size is
sent at once and on every SIGWINCH (the last resize of any viewer wins). Ctrl-] (as telnet)
detaches and leaves the run running. The terminal is restored on every way out.

An ended run's final screen is drawn and the command exits 0; a run without a terminal, or a
run that does not exist, is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import select
import signal
import sys
import termios
import tty
from typing import Any

from aios.cli.common import CliError, running
from aios.paths import Paths
from aios.wsclient import ProtocolError, Refused, WebSocket

DETACH = b"\x1d"  # Ctrl-]
DETACH_NAME = "Ctrl-]"
PUSH_TITLE, POP_TITLE = "\x1b[22;0t", "\x1b[23;0t"  # xterm's title stack (XTWINOPS)


def cmd_attach(args: argparse.Namespace) -> int:
    info = running(Paths.from_env())
    origin = f"http://127.0.0.1:{info.port}"
    headers = [("Authorization", f"Bearer {info.token}"), ("Origin", origin)]
    try:
        socket = WebSocket.connect(
            "127.0.0.1", info.port, f"/api/runs/{args.run}/terminal", headers
        )
    except Refused as exc:
        raise CliError(exc.error or f"the daemon refused the terminal ({exc.status})") from exc
    except (OSError, ProtocolError) as exc:
        raise CliError(f"cannot reach AIOS's terminal: {exc}") from exc
    try:
        first = socket.receive()
        if first is None or first.get("type") != "screen":
            raise CliError("the daemon closed the terminal at once")
        if not first["input"]:
            _write(first["data"].encode())
            print(
                f"\naios: run {args.run} has ended ({first['state']}): its final screen",
                file=sys.stderr,
            )
            return 0
        if not (os.isatty(0) and os.isatty(1)):
            raise CliError("aios attach needs a terminal: run it in one (stdin and stdout)")
        return _attached(socket, first, args.run)
    finally:
        socket.close()


def _attached(socket: WebSocket, first: dict[str, Any], run: str) -> int:
    print(
        f"aios: attached to run {run}; {DETACH_NAME} detaches (the run keeps running)",
        file=sys.stderr,
    )
    saved = termios.tcgetattr(0)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous = signal.signal(signal.SIGWINCH, lambda *_: None)
    old_wakeup = signal.set_wakeup_fd(wake_write)
    ended: dict[str, Any] | None = None
    detached = False
    try:
        tty.setraw(0)
        # The note above is cleared with the screen: the window's title keeps saying it (the
        # old title saved, and given back on the way out, where the terminal can).
        _write(f"{PUSH_TITLE}\x1b]2;aios attach {run}: {DETACH_NAME} detaches\x07".encode())
        _write(first["data"].encode())
        _send_size(socket)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        server = socket.fileno()
        while not socket.closed and ended is None and not detached:
            readable, _, _ = select.select([0, server, wake_read], [], [])
            if wake_read in readable:
                os.read(wake_read, 512)
                _send_size(socket)
            if 0 in readable:
                data = os.read(0, 4096)
                keys, hit, _ = data.partition(DETACH)
                detached = bool(hit) or not data
                if text := decoder.decode(keys):
                    socket.send({"type": "input", "data": text})
            if server in readable:
                socket.read_available()
                for message in socket.pending():
                    ended = _show(message) or ended
    finally:
        with contextlib.suppress(OSError):
            _write(POP_TITLE.encode())
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGWINCH, previous)
        os.close(wake_read)
        os.close(wake_write)
    if detached:
        print(f"\r\naios: detached; run {run} keeps running (aios attach {run})", file=sys.stderr)
        return 0
    if ended is not None:
        code = ended.get("exit_code")
        print(f"\r\naios: run {run} ended: {ended['state']} (exit {code})", file=sys.stderr)
        return 0
    raise CliError("the daemon closed the terminal")


def _show(message: dict[str, Any]) -> dict[str, Any] | None:
    kind = message.get("type")
    if kind in ("output", "screen"):
        _write(str(message.get("data", "")).encode())
    elif kind == "error":
        print(f"\r\naios: {message.get('error')}\r", file=sys.stderr)
    elif kind == "ended":
        return message
    return None  # "resized": another viewer's size; this terminal keeps its own


def _send_size(socket: WebSocket) -> None:
    with contextlib.suppress(OSError):
        size = os.get_terminal_size(1)
        socket.send({"type": "resize", "cols": size.columns, "rows": size.lines})


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]
