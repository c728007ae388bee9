"""The current line of a terminal, so progress displays read as they do in one.

Test runners, package managers and download bars redraw one line: ``\\r`` goes back to its start
(the last write wins), ``ESC[K`` erases to its end, ``ESC[2K`` all of it, ``\\b`` and
``ESC[nD``/``ESC[nC``/``ESC[nG`` move along it. ``Terminal`` keeps that one open line as styled
segments and turns everything else into HTML as soon as a newline completes it: completed lines
never change, so a page appends them once and only ever replaces the open line.

What it does not do: move between lines (``ESC[nA``, as multi-line progress displays do) or
draw a full screen; those sequences are dropped. A line longer than ``WRAP`` columns continues on
a new row, as in a terminal that wide, so a flood without newlines stays cheap to redraw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aios.server.ansi import PLAIN, TOKEN, Style, apply_sgr

WRAP = 2048


@dataclass
class Terminal:
    style: Style = PLAIN
    # Rows of the open line that a page already shows: recomputed, not sent again (live.py).
    skip_wraps: int = 0
    line_style: Style = PLAIN  # the style in force when the open line began
    wraps: int = 0  # rows the open line has already filled (soft wraps since its start)
    _segments: list[tuple[str, Style]] = field(default_factory=list)
    _length: int = 0
    _col: int = 0

    def feed(self, text: str) -> str:
        """Process decoded output; returns the HTML of the rows it completed."""
        out: list[str] = []
        position = 0
        for match in TOKEN.finditer(text):
            if match.start() > position:
                self._text(text[position : match.start()], out)
            position = match.end()
            self._escape(match, out)
        if position < len(text):
            self._text(text[position:], out)
        return "".join(out)

    def tail(self) -> str:
        """The open line as HTML: what a page shows after the completed rows, and replaces."""
        # One span per run of one style, however the line was written (so chunking never shows).
        runs: list[tuple[str, Style]] = []
        for text, style in self._segments:
            if runs and runs[-1][1] == style:
                runs[-1] = (runs[-1][0] + text, style)
            elif text:
                runs.append((text, style))
        return "".join(style.html(text) for text, style in runs)

    # -- text -----------------------------------------------------------------------------------

    def _text(self, text: str, out: list[str]) -> None:
        first, *rest = text.split("\n")
        self._write(first, out)
        if not rest:
            return
        self._newline(out)
        *middle, last = rest
        # Whole lines with nothing to redraw (the usual case, and a flood's): straight to HTML.
        for line in middle:
            out.append(self.style.html(line) + "\n")
        self._write(last, out)

    def _write(self, text: str, out: list[str]) -> None:
        while text:
            if self._col >= WRAP:
                self._soft_wrap(out)
            room = WRAP - self._col
            piece, text = text[:room], text[room:]
            if self._col == self._length:  # appending: the cheap, common case
                self._append(piece, self.style)
            else:
                if self._col > self._length:
                    self._append(" " * (self._col - self._length), PLAIN)
                end = self._col + len(piece)
                self._segments = [
                    *self._slice(0, self._col),
                    (piece, self.style),
                    *self._slice(end, self._length),
                ]
                self._length = max(self._length, end)
            self._col += len(piece)

    def _append(self, text: str, style: Style) -> None:
        if self._segments and self._segments[-1][1] == style:
            self._segments[-1] = (self._segments[-1][0] + text, style)
        else:
            self._segments.append((text, style))
        self._length += len(text)

    def _slice(self, start: int, end: int) -> list[tuple[str, Style]]:
        """The segments covering columns ``start`` to ``end`` of the open line."""
        result = []
        position = 0
        for text, style in self._segments:
            low, high = max(start, position), min(end, position + len(text))
            if low < high:
                result.append((text[low - position : high - position], style))
            position += len(text)
        return result

    def _newline(self, out: list[str]) -> None:
        out.append(self._take() + "\n")
        self.skip_wraps = 0
        self.wraps = 0
        self.line_style = self.style

    def _soft_wrap(self, out: list[str]) -> None:
        row = self._take()
        if self.skip_wraps:
            self.skip_wraps -= 1  # the page has this row already
        else:
            out.append(row)
        self.wraps += 1

    def _take(self) -> str:
        html = self.tail()
        self._segments, self._length, self._col = [], 0, 0
        return html

    # -- escapes and controls -------------------------------------------------------------------

    def _escape(self, match: re.Match[str], out: list[str]) -> None:
        control = match.group("control")
        if control is not None:
            if control == "\n":
                self._newline(out)
            elif control == "\r":
                self._col = 0
            elif control == "\b":
                self._col = max(0, self._col - 1)
            return  # other controls (bell...) show nothing
        final = match.group("final")
        if final is None:
            return  # OSC, charset and other escapes: nothing to show
        params = match.group("params") or ""
        if final == "m":
            self.style = apply_sgr(self.style, params)
            return
        if params.startswith(("?", "<", "=", ">")):
            return  # private modes (cursor shown/hidden...)
        count = _first(params)
        if final == "K":
            self._erase(count if params else 0)
        elif final == "G":
            self._col = min(max(count, 1) - 1, WRAP)
        elif final == "C":
            self._col = min(self._col + max(count, 1), WRAP)
        elif final == "D":
            self._col = max(0, self._col - max(count, 1))

    def _erase(self, mode: int) -> None:
        if mode == 0:  # from the cursor to the end
            self._segments = self._slice(0, min(self._col, self._length))
            self._length = min(self._col, self._length)
        elif mode == 1 and self._length:  # from the start to the cursor (included)
            blank = min(self._col + 1, self._length)
            self._segments = [(" " * blank, PLAIN), *self._slice(blank, self._length)]
        elif mode == 2:  # the whole line; the cursor stays where it is
            self._segments, self._length = [], 0


def _first(params: str) -> int:
    head = params.split(";", 1)[0].split(":", 1)[0]
    return int(head) if head.isascii() and head.isdigit() and len(head) <= 6 else 0
