"""A live terminal run's terminal, as the shell holds it: its screen, its size and its viewers.

The output reader feeds it what the program writes (``feed``); viewers (the dashboard's
WebSocket, ``aios attach``) join it, get the screen as it is now and then every piece of output
as it comes, and may type into it and resize it. All viewers share one size: the last resize
wins, and the others are told. When the run ends each viewer is told how, its queue closed,
and the final screen is kept (the shell writes it beside the run's log).

Each viewer has a bounded queue: a viewer that falls ``VIEWER_QUEUE`` messages behind loses
them, and gets the current screen instead when it catches up (a slow phone never stalls the
program, nor the other viewers).

The screen model is slow (``aios.agents.screen``): a piece of output is cut short where it
can be, and otherwise drawn in slices of ``SLICE`` characters with the event loop's turn
between them (the program waits on its terminal meanwhile, as it would for a slow terminal).
Only then does the piece go to the viewers, and a viewer that joins meanwhile gets the screen
once the piece is drawn: what it is sent is always the screen, then what followed it.

The messages are the WebSocket protocol's (docs/terminal.md), as dicts ready for JSON.
"""

from __future__ import annotations

import asyncio
import codecs
from dataclasses import dataclass, field
from typing import Any

from aios.agents.process import AgentProcess
from aios.agents.screen import MAX_SIZE, VIEWER_REPLY, Screen, flood_cut

__all__ = ["DEFAULT_SIZE", "MAX_SIZE", "LiveTerminal", "Message", "Viewer"]

DEFAULT_SIZE = (100, 30)  # columns, rows: until a viewer says how big it is
VIEWER_QUEUE = 256  # messages a viewer may fall behind before it gets the screen instead
SLICE = 2048  # characters drawn on the screen model between two turns of the event loop

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
        self.run_id = run_id
        self.screen = Screen(*size)
        self.process: AgentProcess | None = None
        self.viewers: set[Viewer] = set()
        self.ended: Message | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._joining: list[Viewer] = []  # joined while a piece was being drawn
        self._drawing = False

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

    async def feed(self, data: bytes) -> None:
        """What the program wrote: onto the screen (answered where it asks), then to every
        viewer; the viewers that joined meanwhile get the screen instead."""
        text = self._decoder.decode(data)
        if not text:
            return
        drawn = flood_cut(text, self.size[1])
        self._drawing = True
        try:
            for start in range(0, len(drawn), SLICE):
                if start:
                    await asyncio.sleep(0)
                replies = self.screen.feed(drawn[start : start + SLICE])
                if replies and self.process is not None:
                    self.process.type(replies.encode())
        finally:
            self._drawing = False
        self._broadcast({"type": "output", "data": text})
        self._welcome()

    def _welcome(self) -> None:
        for viewer in self._joining:
            if self.ended is None:
                self.viewers.add(viewer)
                _put(viewer, self._screen_message(viewer))
        self._joining.clear()

    def end(self, state: str, exit_code: int | None) -> Message:
        """The run ended: tell every viewer and let them go; the final screen, to keep."""
        self._welcome()  # a piece was being drawn as it ended: what was drawn is the screen
        if (rest := self._decoder.decode(b"", final=True)) != "":
            self.screen.feed(rest)
            self._broadcast({"type": "output", "data": rest})
        self.process = None
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
        elif self._drawing:
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
        return None

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
        if viewer.queue.full():
            # Fallen behind: what it missed is in the screen, which replaces all of it.
            while not viewer.queue.empty():
                viewer.queue.get_nowait()
            if message["type"] == "output":
                message = self._screen_message(viewer)
            else:
                _put(viewer, self._screen_message(viewer))
        _put(viewer, message)


def _put(viewer: Viewer, message: Message | None) -> None:
    if viewer.queue.full():  # only the end can find it full: it must still get through
        viewer.queue.get_nowait()
    viewer.queue.put_nowait(message)
