"""Splitting an agent's output into lines for its format's reducer, with a cap on line length.

An agent can print anything: a line of 100 MB, no newline at all, invalid UTF-8. Memory stays
bounded by ``MAX_LINE`` per stream whatever it prints: a longer line is cut there, the rest of it
up to the next newline is dropped, and it is counted in ``overlong``.
"""

from __future__ import annotations

MAX_LINE = 1024 * 1024  # bytes; claude's tool results can be long JSON lines, rarely more


class LineSplitter:
    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.overlong = 0
        self._buffer = bytearray()
        self._skipping = False  # inside the dropped rest of an overlong line

    def feed(self, data: bytes) -> list[str]:
        """The lines ``data`` completes (without their newline), decoded."""
        lines: list[str] = []
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._take(data[start:end], lines, complete=True)
            start = end + 1
        self._take(data[start:], lines, complete=False)
        return lines

    @property
    def tail(self) -> str:
        """The line begun and not yet ended (a question waiting for its answer), decoded."""
        return "" if self._skipping else _decode(bytes(self._buffer))

    def flush(self) -> list[str]:
        """At the end of the stream: the last line, if it had no newline."""
        lines: list[str] = []
        if self._buffer and not self._skipping:
            lines.append(_decode(bytes(self._buffer)))
        self._buffer.clear()
        self._skipping = False
        return lines

    def _take(self, piece: bytes, lines: list[str], *, complete: bool) -> None:
        if self._skipping:
            if complete:
                self._skipping = False
            return
        self._buffer += piece
        if len(self._buffer) > self.max_line:
            lines.append(_decode(bytes(self._buffer[: self.max_line])))
            self._buffer.clear()
            self.overlong += 1
            self._skipping = not complete
        elif complete:
            lines.append(_decode(bytes(self._buffer)))
            self._buffer.clear()


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").removesuffix("\r")
