"""The screen of a terminal run, as the daemon keeps it: what a viewer that connects late sees.

A pyte ``Screen`` fed the program's output (decoded as it came) is the model; ``render`` turns
it back into the ANSI that draws it on an empty terminal of the same size: clear, each row with
its SGR attributes, then the modes a program set that change what keys send (application cursor
keys, bracketed paste, mouse reporting) and the cursor's place and visibility. A viewer that
writes ``render()`` and then the output that follows sees what the program drew.

Memory is bounded by the screen's size: no scrollback is kept (pyte's plain ``Screen`` keeps
none; the whole output is in the run's log). The alternate screen (``?1049h``) is not kept apart:
a program that switches to it redraws it, and its contents are what the model holds meanwhile.

pyte draws one character at a time (about 100 KB/s on our machines), so a flood is cut short
before it reaches the model (``flood_cut``): of a large piece of output, a prefix made only of
text, newlines and colours, that scrolls away under the lines after it, is replaced by what it
leaves behind (its last colours, and the scrolling). The model is then exactly as if it had
drawn it all. Output that moves the cursor about is drawn in full (the caller feeds it in
slices, giving the event loop its turn between them).

Queries the program sends its terminal (cursor position, device attributes) are answered by the
model itself, through ``replies``: a program that asks before any viewer is connected (codex's
TUI does, with a timeout) gets its answer, and exactly one answer, whatever number of viewers
(``aios.agents.terminals`` drops the viewers' own replies to them).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pyte
from pyte import graphics
from pyte.screens import StaticDefaultDict

from aios.agents.screen_text import FLOOD, MAX_SIZE, VIEWER_REPLY, flood_cut

__all__ = ["FLOOD", "MAX_SIZE", "VIEWER_REPLY", "Screen", "flood_cut"]

_FG = {name: code for code, name in {**graphics.FG_ANSI, **graphics.FG_AIXTERM}.items()}
_BG = {name: code for code, name in {**graphics.BG_ANSI, **graphics.BG_AIXTERM}.items()}
_HEX = re.compile(r"[0-9a-fA-F]{6}")
# Private modes (pyte stores them shifted by 5) that change what the keyboard or mouse send,
# so a late viewer must be told: application cursor keys, mouse reporting, bracketed paste.
_INPUT_MODES = (1, 9, 1000, 1002, 1003, 1005, 1006, 1015, 2004)


class _Model(pyte.Screen):  # type: ignore[misc,unused-ignore]  # pyte is untyped (Any)
    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.replies: list[str] = []

    def write_process_input(self, data: str) -> None:
        self.replies.append(data)

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """As a terminal resizes: fewer rows scroll away only the rows above that the cursor
        needs gone to stay on the screen (pyte's own drops rows from the top whatever the
        cursor's place, and leaves the cursor on the wrong text)."""
        lines = lines or self.lines
        if lines < self.lines:
            scroll = max(0, self.cursor.y + 1 - lines)
            old = self.buffer
            self.buffer = defaultdict(lambda: StaticDefaultDict(self.default_char))
            for y in range(lines):
                if y + scroll in old:
                    self.buffer[y] = old[y + scroll]
            self.cursor.y -= scroll
            self.lines = lines
            self.dirty.update(range(lines))
        super().resize(lines=lines, columns=columns)
        self.cursor.x = min(self.cursor.x, self.columns - 1)


class Screen:
    def __init__(self, cols: int, rows: int) -> None:
        self._model = _Model(cols, rows)
        self._stream = pyte.Stream(self._model)

    @property
    def size(self) -> tuple[int, int]:
        return self._model.columns, self._model.lines

    def feed(self, text: str) -> str:
        """Take output the program wrote; returns what the terminal answers it ("" mostly)."""
        self._stream.feed(text)
        if not self._model.replies:
            return ""
        replies = "".join(self._model.replies)
        self._model.replies.clear()
        return replies

    def resize(self, cols: int, rows: int) -> None:
        self._model.resize(lines=rows, columns=cols)

    def render(self) -> str:
        """The ANSI that draws this screen on an empty terminal of its size."""
        model = self._model
        parts = ["\x1b[0m\x1b[H\x1b[2J"]
        for y in range(model.lines):
            line = model.buffer[y]
            last = _last_used(line, model.columns)
            if last < 0:
                continue
            parts.append(f"\x1b[{y + 1};1H")
            current = ""
            for x in range(last + 1):
                char = line[x]
                if char.data == "":  # the right half of a wide character
                    continue
                sgr = _sgr(char)
                if sgr != current:
                    parts.append(f"\x1b[0;{sgr}m" if sgr else "\x1b[0m")
                    current = sgr
                parts.append(char.data)
            parts.append("\x1b[0m")
        for mode in _INPUT_MODES:
            if (mode << 5) in model.mode:
                parts.append(f"\x1b[?{mode}h")
        cursor = model.cursor
        parts.append(f"\x1b[{cursor.y + 1};{cursor.x + 1}H")
        parts.append("\x1b[?25l" if cursor.hidden else "\x1b[?25h")
        return "".join(parts)

    def text(self) -> list[str]:
        """The rows as plain text (for tests and logs)."""
        return [str(row) for row in self._model.display]


def _last_used(line: Any, columns: int) -> int:
    """The last column that differs from a blank cell (-1: the row is blank)."""
    for x in range(min(columns, max(line.keys(), default=-1) + 1) - 1, -1, -1):
        char = line[x]
        if char.data not in (" ", "") or _sgr(char):
            return x
    return -1


# pyte's attribute of a cell, and the SGR parameter that sets it.
_ATTRIBUTES = (
    ("bold", "1"),
    ("italics", "3"),
    ("underscore", "4"),
    ("blink", "5"),
    ("reverse", "7"),
    ("strikethrough", "9"),
)


def _sgr(char: Any) -> str:
    codes = [code for attribute, code in _ATTRIBUTES if getattr(char, attribute)]
    codes += _color(char.fg, _FG, 38)
    codes += _color(char.bg, _BG, 48)
    return ";".join(codes)


def _color(color: str, names: dict[str, int], extended: int) -> list[str]:
    if color == "default":
        return []
    if (code := names.get(color)) is not None:
        return [str(code)]
    if _HEX.fullmatch(color):
        r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
        return [str(extended), "2", str(r), str(g), str(b)]
    return []
