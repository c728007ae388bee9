"""The daemon's side of a terminal, in process: the screen model (what a late viewer is drawn,
floods cut short exactly, resizing, answering queries) and the viewers of a live terminal
(first the screen, then the output; falling behind; resizes; the end)."""

from __future__ import annotations

import asyncio
from typing import cast

from aios.agents.process import AgentProcess
from aios.agents.screen import FLOOD, VIEWER_REPLY, Screen, flood_cut
from aios.agents.terminals import VIEWER_QUEUE, LiveTerminal, Message, Viewer


def redrawn(screen: Screen) -> Screen:
    """What a late viewer's terminal shows: a fresh one, drawn from ``render``."""
    cols, rows = screen.size
    copy = Screen(cols, rows)
    copy.feed(screen.render())
    return copy


def test_render_draws_the_same_screen_colours_and_all() -> None:
    screen = Screen(40, 6)
    screen.feed("plain \x1b[1;31mbold red\x1b[0m \x1b[38;5;208morange\x1b[0m \x1b[7minv\x1b[0m\r\n")
    screen.feed("wide: 漢字 done\r\n\x1b[4;10H\x1b[44mblue\x1b[0m\x1b[?1h\x1b[?2004h\x1b[2;3H")
    copy = redrawn(screen)
    assert copy.text() == screen.text()
    assert copy.render() == screen.render()
    rendered = screen.render()
    assert "\x1b[?1h" in rendered and "\x1b[?2004h" in rendered  # keys send what they sent
    assert rendered.endswith("\x1b[2;3H\x1b[?25h")  # the cursor where the program left it


def test_a_flood_is_cut_short_and_the_screen_is_exactly_the_same() -> None:
    plain = "".join(f"line {i} " + "x" * 50 + "\r\n" for i in range(5000))
    colour = "".join(f"\x1b[1;3{i % 8}mline {i}\x1b[0m text\r\n" for i in range(5000))
    for text in (plain, colour, colour + "\x1b[35mstill magenta"):
        full, cut = Screen(80, 24), Screen(80, 24)
        for screen in (full, cut):
            screen.feed("before\r\n\x1b[10;10Hsomewhere")
        short = flood_cut(text, 24)
        assert len(short) < FLOOD
        full.feed(text)
        cut.feed(short)
        assert cut.render() == full.render()
    # Output that moves the cursor about is drawn in full.
    moving = "".join(f"\x1b[{i % 20 + 1};1Hrow {i}\r\n" for i in range(2000))
    assert flood_cut(moving, 24) == moving
    assert flood_cut("short\r\n", 24) == "short\r\n"


def test_fewer_rows_scroll_away_only_what_the_cursor_needs() -> None:
    top = Screen(20, 10)
    top.feed("first\r\nsecond")  # the cursor on row 2 of 10
    top.resize(20, 5)
    assert top.text()[:2] == ["first".ljust(20), "second".ljust(20)]
    bottom = Screen(20, 10)
    bottom.feed("\r\n".join(f"r{i}" for i in range(10)))  # the cursor on the last row
    bottom.resize(15, 4)
    assert [row.strip() for row in bottom.text()] == ["r6", "r7", "r8", "r9"]
    assert redrawn(bottom).text() == bottom.text()


def test_queries_are_answered_once_by_the_model() -> None:
    screen = Screen(80, 24)
    assert screen.feed("ab\x1b[6n") == "\x1b[1;3R"  # where the cursor is
    assert screen.feed("\x1b[c").startswith("\x1b[?")  # what terminal this is
    assert VIEWER_REPLY.fullmatch("\x1b[12;40R\x1b[?1;2c")  # a viewer's own answers: dropped
    assert not VIEWER_REPLY.fullmatch("\x1b[A")  # an arrow key is not one


class Typed:
    """Stands in for the program: what was typed into its terminal."""

    def __init__(self) -> None:
        self.typed: list[bytes] = []
        self.sizes: list[tuple[int, int]] = []

    def type(self, data: bytes) -> bool:
        self.typed.append(data)
        return True

    def resize(self, cols: int, rows: int) -> None:
        self.sizes.append((cols, rows))


def messages(viewer: Viewer) -> list[Message | None]:
    taken = []
    while not viewer.queue.empty():
        taken.append(viewer.queue.get_nowait())
    return taken


async def test_viewers_get_the_screen_then_the_output_and_the_end() -> None:
    live = LiveTerminal("r1", (40, 10))
    program = Typed()
    live.started(cast(AgentProcess, program))
    live.feed(b"hello ")
    assert messages(live.join("running")) == []  # the screen is behind: none yet
    await live.caught_up()
    first = live.join("running")
    [screen] = messages(first)
    assert screen is not None and screen["type"] == "screen" and screen["input"] is True
    assert "hello" in screen["data"] and (screen["cols"], screen["rows"]) == (40, 10)
    live.feed("w\xc3".encode("latin-1"))  # half a UTF-8 character: held for the rest
    live.feed(b"\xa9rld\x1b[6n")
    await live.caught_up()
    assert messages(first) == [
        {"type": "output", "data": "w"},
        {"type": "output", "data": "érld\x1b[6n"},
    ]
    assert program.typed == [b"\x1b[1;12R"]  # the query answered by the model, once
    assert live.type(first, "\x1b[1;12R") is None and len(program.typed) == 1  # viewer's: dropped
    assert live.type(first, "ls\r") is None and program.typed[-1] == b"ls\r"
    second = live.join("running")
    messages(second)
    live.resize(second, 60, 20)
    assert program.sizes == [(60, 20)]
    assert messages(first) == [{"type": "resized", "cols": 60, "rows": 20}]
    assert messages(second) == []  # the one who resized knows
    live.resize(first, 9999, 0)  # clamped to 500 x 1
    assert live.size == (500, 1)
    final = await live.finish("succeeded", 0)
    assert messages(first)[-2:] == [
        {"type": "ended", "state": "succeeded", "exit_code": 0},
        None,
    ]
    assert "wérld" in final["data"] or live.size[1] == 1
    late = live.join("succeeded")
    assert late.may_type is False
    assert live.type(late, "x") == "this terminal is read-only: its run has ended"
    [screen_after, end] = messages(late)
    assert screen_after is not None and screen_after["input"] is False and end is None


async def test_a_viewer_that_joins_while_the_screen_is_behind_gets_it_once_drawn() -> None:
    live = LiveTerminal("r2", (80, 24))
    early = live.join("running")
    messages(early)
    piece = "".join(f"\x1b[{i % 24 + 1};1Hrow {i}" for i in range(3000)).encode()
    live.feed(piece)  # to the viewers at once: the reader never waits for the screen
    assert [m["type"] for m in messages(early) if m] == ["output"]
    await asyncio.sleep(0)  # the first slice is drawn; the loop has its turn
    joined = live.join("running")
    assert messages(joined) == []  # not before the screen has drawn the piece
    live.feed(b"\x1b[1;40Hlast")
    await live.caught_up()
    [screen] = messages(joined)
    assert screen is not None and "row 2999" in screen["data"] and "last" in screen["data"]
    assert messages(joined) == []  # and not the output the screen already has


async def test_a_screen_far_behind_skips_to_the_newest_output() -> None:
    live = LiveTerminal("r4", (80, 24))
    redraw = "".join(f"\x1b[{i % 24 + 1};1Hold {i}" for i in range(40000))
    live.feed(redraw.encode())  # over PENDING_MAX in all, faster than it can be drawn
    live.feed(redraw.encode())
    live.feed(b"\x1b[2J\x1b[Hfresh screen")
    await live.caught_up()
    assert live.screen.text()[0].startswith("fresh screen")


async def test_a_viewer_that_falls_behind_gets_the_screen_instead() -> None:
    live = LiveTerminal("r3", (20, 5))
    slow = live.join("running")
    for i in range(VIEWER_QUEUE + 10):
        live.feed(f"{i}\r\n".encode())
    await live.caught_up()
    queued = messages(slow)
    # Full at the first screen and VIEWER_QUEUE - 1 pieces: what it had not taken was dropped,
    # and it gets the screen once that is drawn, with everything after in it.
    assert len(queued) == 1
    resync = queued[0]
    assert resync is not None and resync["type"] == "screen"
    assert f"{VIEWER_QUEUE + 9}" in resync["data"]
    live.feed(b"more")
    assert messages(slow) == [{"type": "output", "data": "more"}]
    assert live.type(slow, "x") == "the program is not running (yet)"
