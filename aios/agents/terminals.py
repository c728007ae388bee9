"""A live terminal run's terminal, as the shell holds it: its screen, its size and its viewers.

The output reader feeds it what the program writes (``feed``); viewers (the dashboard's
WebSocket, ``aios attach``) join it, get the screen as it is now and then every piece of output
as it comes, and may type into it and resize it. All viewers share one size: the last resize
wins, and the others are told. When the run ends each viewer is told how, its queue closed,
and the final screen is kept (the shell writes it beside the run's log).

Each viewer has a bounded queue: a viewer that falls ``VIEWER_QUEUE`` messages behind loses
them, and gets the current screen instead when it catches up (a slow phone never stalls the
program, nor the other viewers).

Output goes to the viewers (and the log) as it is read; the screen model is slow
(``aios.agents.screen``), so it is drawn apart, by a drawer task: what is pending is drawn in
batches (a flood cut short where it can be) and slices of ``SLICE`` characters, the event loop
taking its turn between them. A viewer that joins while the screen is behind gets it once the
drawer has caught up: what it is sent is always a screen, then what followed it. A screen more
than ``PENDING_MAX`` characters behind skips to the newest output (``catch_up``).

The messages are the WebSocket protocol's (docs/terminal.md), as dicts ready for JSON.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aios.agents.process import AgentProcess
from aios.agents.screen_text import MAX_SIZE, VIEWER_REPLY, flood_cut

if TYPE_CHECKING:
    from aios.agents.screen import Screen

__all__ = ["DEFAULT_SIZE", "MAX_SIZE", "LiveTerminal", "Message", "Viewer", "catch_up"]

log = logging.getLogger("aios.terminals")

DEFAULT_SIZE = (100, 30)  # columns, rows: until a viewer says how big it is
VIEWER_QUEUE = 256  # messages a viewer may fall behind before it gets the screen instead
SLICE = 512  # characters drawn on the screen model between two turns of the event loop
DRAW_MAX = 64 * 1024  # characters drawn in one batch at most; beyond, it skips (catch_up)
DRAW_PAUSE = 0.05  # seconds between two batches of drawing
# Characters of output the screen may be behind; beyond, it skips to the newest (catch_up).
PENDING_MAX = 1024 * 1024
CATCH_UP = 16 * 1024  # characters drawn after a skip, from the last full-screen clear if any
CLEARS = ("\x1b[2J", "\x1b[H\x1b[J", "\x1b[H\x1b[0J")

Message = dict[str, Any]


@dataclass(eq=False)
class Viewer:
    """One connected viewer: its queue of messages (None: the end), and what it may do."""

    may_type: bool
    state: str
    queue: asyncio.Queue[Message | None] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )


class LiveTerminal:
    def __init__(self, run_id: str, size: tuple[int, int] = DEFAULT_SIZE) -> None:
        from aios.agents.screen import Screen  # noqa: PLC0415 - pyte only once a terminal runs

        self.run_id = run_id
        self.screen: Screen = Screen(*size)
        self.process: AgentProcess | None = None
        self.viewers: set[Viewer] = set()
        self.ended: Message | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._joining: list[Viewer] = []  # joined while the screen was behind the output
        self._pending: list[str] = []  # output not drawn on the screen yet
        self._pending_size = 0
        self._drawer: asyncio.Future[None] | None = None
        self._typed_at: float | None = None  # monotonic: the last input a viewer sent

    @property
    def size(self) -> tuple[int, int]:
        return self.screen.size

    # -- the program's side ---------------------------------------------------------------

    def started(self, process: AgentProcess) -> None:
        """A new attempt's process (spawned at ``size``) now owns the terminal."""
        self.process = process
        self._decoder.reset()

    def stopped(self) -> None:
        self.process = None

    def feed(self, data: bytes) -> None:
        """What the program wrote: to every viewer at once, and onto the screen as the drawer
        gets to it (the reader never waits for the model: the log keeps up with the program)."""
        text = self._decoder.decode(data)
        if text:
            self._broadcast({"type": "output", "data": text})
            self._queue_drawing(text)

    def _queue_drawing(self, text: str) -> None:
        self._pending.append(text)
        self._pending_size += len(text)
        if self._pending_size > PENDING_MAX:
            behind = flood_cut("".join(self._pending), self.size[1])  # exact, where it can be
            if len(behind) > PENDING_MAX:
                behind = catch_up(behind)
            self._pending, self._pending_size = [behind], len(behind)
        if self._drawer is None or self._drawer.done():
            self._drawer = asyncio.ensure_future(self._draw())
            self._drawer.add_done_callback(_report)

    async def _draw(self) -> None:
        """Draw what is pending, in batches (a flood cut short: ``flood_cut``) and slices (the
        event loop's turn between them); then the viewers that joined meanwhile get the screen."""
        while self._pending:
            batch = "".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            drawn = flood_cut(batch, self.size[1])
            if len(drawn) > DRAW_MAX:  # more redrawing than pyte could follow
                drawn = catch_up(drawn)
            for start in range(0, len(drawn), SLICE):
                if start:
                    await asyncio.sleep(0)
                replies = self.screen.feed(drawn[start : start + SLICE])
                if replies and self.process is not None:
                    self.process.type(replies.encode())
            # A pause before the next batch: what is read meanwhile makes one batch, which a
            # flood makes large, and a large flood is cut short (drawn one read at a time, it
            # would be drawn in full).
            await asyncio.sleep(DRAW_PAUSE)
        self._welcome()

    def _welcome(self) -> None:
        for viewer in self._joining:
            if self.ended is None:
                self.viewers.add(viewer)
                _put(viewer, self._screen_message(viewer))
        self._joining.clear()

    async def caught_up(self) -> None:
        """Wait until the screen has drawn all the output read so far."""
        while self._drawer is not None and not self._drawer.done():
            await asyncio.shield(self._drawer)
        self._welcome()

    async def finish(self, state: str, exit_code: int | None) -> Message:
        """The run ended: the screen drawn to the end, every viewer told and let go; the final
        screen, to keep."""
        if (rest := self._decoder.decode(b"", final=True)) != "":
            self._broadcast({"type": "output", "data": rest})
            self._queue_drawing(rest)
        self.process = None
        await self.caught_up()
        self._broadcast({"type": "ended", "state": state, "exit_code": exit_code})
        for viewer in self.viewers:
            _put(viewer, None)
        self.viewers.clear()
        cols, rows = self.size
        self.ended = {"data": self.screen.render(), "cols": cols, "rows": rows}
        return self.ended

    # -- the viewers' side ----------------------------------------------------------------

    def join(self, state: str) -> Viewer:
        """A new viewer; its first message is the screen (once a piece being drawn is)."""
        viewer = Viewer(may_type=self.ended is None, state=state)
        if self.ended is not None:
            _put(viewer, self._screen_message(viewer))
            _put(viewer, None)
        elif self._behind():
            self._joining.append(viewer)
        else:
            self.viewers.add(viewer)
            _put(viewer, self._screen_message(viewer))
        return viewer

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if viewer in self._joining:
            self._joining.remove(viewer)

    def type(self, viewer: Viewer, data: str) -> str | None:
        """Type ``data`` (keystrokes, a paste) for ``viewer``; why not, if it was not taken."""
        if not viewer.may_type:
            return "this terminal is read-only: its run has ended"
        if VIEWER_REPLY.fullmatch(data):
            return None  # the viewer's terminal answering a query the screen model answered
        if self.process is None:
            return "the program is not running (yet)"
        if not self.process.type(data.encode("utf-8", errors="replace")):
            return "input not taken: the program has not read what was typed before"
        self._typed_at = time.monotonic()
        return None

    def typed_within(self, seconds: float) -> bool:
        """Whether a viewer typed into it in the last ``seconds``."""
        return self._typed_at is not None and time.monotonic() - self._typed_at < seconds

    def resize(self, viewer: Viewer | None, cols: int, rows: int) -> None:
        """Set the one size all viewers share (the last resize wins); the others are told."""
        cols, rows = max(1, min(cols, MAX_SIZE)), max(1, min(rows, MAX_SIZE))
        if (cols, rows) == self.size or self.ended is not None:
            return
        self.screen.resize(cols, rows)
        if self.process is not None:
            self.process.resize(cols, rows)
        message = {"type": "resized", "cols": cols, "rows": rows}
        for other in list(self.viewers):
            if other is not viewer:
                self._send(other, message)

    # -- delivery -------------------------------------------------------------------------

    def _screen_message(self, viewer: Viewer) -> Message:
        cols, rows = self.size
        data = self.ended["data"] if self.ended is not None else self.screen.render()
        return {
            "type": "screen",
            "data": data,
            "cols": cols,
            "rows": rows,
            "input": viewer.may_type,
            "state": viewer.state,
        }

    def _broadcast(self, message: Message) -> None:
        for viewer in list(self.viewers):
            self._send(viewer, message)

    def _send(self, viewer: Viewer, message: Message) -> None:
        if not viewer.queue.full():
            _put(viewer, message)
            return
        # Fallen behind: what it missed will be in the screen, which replaces all of it.
        while not viewer.queue.empty():
            viewer.queue.get_nowait()
        if message["type"] == "ended":  # the screen is drawn to the end by now
            _put(viewer, self._screen_message(viewer))
            _put(viewer, message)
            return
        # Output is drawn after it is sent: the screen comes once it is (``_welcome``).
        self.viewers.discard(viewer)
        self._joining.append(viewer)
        if message["type"] != "output" and not self._behind():
            self._welcome()

    def _behind(self) -> bool:
        return bool(self._pending) or (self._drawer is not None and not self._drawer.done())


def catch_up(text: str) -> str:
    """What the screen draws instead of output it fell too far behind on (a program redrawing
    faster than pyte can follow, which ``flood_cut`` cannot shorten): the newest output from
    its last full-screen clear, or else its newest ``CATCH_UP`` characters on a cleared screen.
    The viewers got all of it; only a late viewer's first screen may differ until the program
    redraws, as a terminal that missed output would."""
    tail = text[-CATCH_UP:]
    found = max(tail.rfind(clear) for clear in CLEARS)
    if found >= 0:
        return tail[found:]
    return "\x1b[0m\x1b[2J\x1b[H" + tail


def _report(drawer: asyncio.Future[None]) -> None:
    if not drawer.cancelled() and (exc := drawer.exception()) is not None:
        log.error("drawing a terminal's screen failed", exc_info=exc)


def _put(viewer: Viewer, message: Message | None) -> None:
    if viewer.queue.full():  # only the end can find it full: it must still get through
        viewer.queue.get_nowait()
    viewer.queue.put_nowait(message)
