"""``GET /api/runs/<id>/terminal`` as a WebSocket: a terminal run's screen, live, for the
dashboard's terminal and ``aios attach`` (the protocol: docs/terminal.md).

Before the upgrade, ``aios.server.security`` has checked the Host, the sign-in and the Origin;
here a run that does not exist is 404 and one without a terminal 409, both as HTTP answers to
the handshake. A live terminal run's viewer gets its screen, then its output as it comes, and
may type and resize; an ended one's gets its final screen, read-only, and the socket stays
open until the viewer closes it. Bad messages are answered with an ``error`` message and
ignored; ``MAX_BAD`` of them close the socket (1008), so a flood of garbage costs little.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from quart import Blueprint, Response, websocket

from aios.facade import MAX_SIZE, LiveTerminal, Message, Viewer
from aios.server.common import find_run
from aios.server.context import daemon
from aios.server.errors import error_response
from aios.tasks import cancel

blueprint = Blueprint("terminal_socket", __name__)

MAX_MESSAGE = 64 * 1024  # characters in one message from a viewer (a paste included)
MAX_BAD = 32  # bad messages before the socket is closed
POLICY_VIOLATION = 1008
GOING_AWAY = 1001


@blueprint.websocket("/api/runs/<run_id>/terminal")
async def terminal(run_id: str) -> Response | None:
    run = await find_run(run_id)
    if not run.terminal:
        return error_response(409, f"run {run.id} has no terminal")
    d = daemon()
    live = d.terminal(run.id)
    if live is None:
        ended = await d.find_run(run.id)
        if ended.state.is_live:  # queued before its terminal existed: cannot happen, but say so
            return error_response(409, f"run {run.id} has no terminal yet")
        screen = await d.final_screen(run.id) or {"data": "", "cols": 100, "rows": 30}
        await websocket.accept()
        await _send(
            {"type": "screen", **screen, "input": False, "state": str(ended.state)},
        )
        # Open until the viewer closes it, or the daemon stops (which must not wait for it).
        reading = asyncio.ensure_future(_read_only())
        closing = asyncio.ensure_future(d.closing.wait())
        try:
            done, _ = await asyncio.wait({reading, closing}, return_when=asyncio.FIRST_COMPLETED)
            if closing in done:
                await websocket.close(GOING_AWAY, "AIOS is stopping")
            for task in done:
                task.result()
        finally:
            await cancel({reading, closing}, 1.0)
        return None
    viewer = live.join(str(run.state))  # its first message: the screen
    try:
        await websocket.accept()
        await _serve(live, viewer)
    finally:
        live.leave(viewer)
    return None


async def _serve(live: LiveTerminal, viewer: Viewer) -> None:
    """Output to the viewer and its keys to the program, until the run ends or it goes."""
    sending = asyncio.ensure_future(_deliver(viewer))
    receiving = asyncio.ensure_future(_receive(live, viewer))
    try:
        done, _ = await asyncio.wait({sending, receiving}, return_when=asyncio.FIRST_COMPLETED)
        if sending in done and sending.exception() is None:
            await websocket.close(1000, "the run ended")
        for task in done:
            task.result()
    finally:
        await cancel({sending, receiving}, 1.0)


async def _deliver(viewer: Viewer) -> None:
    while (message := await viewer.queue.get()) is not None:
        await _send(message)


async def _receive(live: LiveTerminal, viewer: Viewer) -> None:
    bad = 0
    while True:
        raw = await websocket.receive()
        message, error = _parse(raw)
        if message is not None:
            if message["type"] == "input":
                error = live.type(viewer, message["data"])
            else:
                live.resize(viewer, message["cols"], message["rows"])
        if error is not None:
            bad += 1
            await _send({"type": "error", "error": error})
            if bad >= MAX_BAD:
                await websocket.close(POLICY_VIOLATION, "too many bad messages")
                return


async def _read_only() -> None:
    """An ended run's viewer: every message is answered that nothing can be typed."""
    bad = 0
    while True:
        raw = await websocket.receive()
        message, error = _parse(raw)
        if message is not None and message["type"] == "resize":
            continue  # the final screen keeps its size; the viewer scales it as it likes
        bad += 1
        error = error or "this terminal is read-only: its run has ended"
        await _send({"type": "error", "error": error})
        if bad >= MAX_BAD:
            await websocket.close(POLICY_VIOLATION, "too many bad messages")
            return


class _Bad(Exception):
    pass


def _parse(raw: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """A viewer's message, checked; or why it is not one."""
    try:
        return _checked(raw), None
    except _Bad as exc:
        return None, str(exc)


def _checked(raw: str | bytes) -> dict[str, Any]:
    if not isinstance(raw, str):
        raise _Bad("messages are JSON text frames, not binary")
    if len(raw) > MAX_MESSAGE:
        raise _Bad(f"message longer than {MAX_MESSAGE} characters")
    try:
        message = json.loads(raw)
    except ValueError:
        raise _Bad("malformed message: not JSON") from None
    if not isinstance(message, dict):
        raise _Bad("malformed message: not a JSON object")
    kind = message.get("type")
    if kind == "input" and not isinstance(message.get("data"), str):
        raise _Bad("malformed input: 'data' must be a string")
    if kind == "resize" and not all(_size(message.get(key)) for key in ("cols", "rows")):
        raise _Bad(f"malformed resize: 'cols' and 'rows' must be integers 1-{MAX_SIZE}")
    if kind not in ("input", "resize"):
        raise _Bad(f"unknown message type {str(kind)[:40]!r}; expected 'input' or 'resize'")
    return message


def _size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SIZE


async def _send(message: Message) -> None:
    await websocket.send(json.dumps(message))
