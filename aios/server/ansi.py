"""Agent output as safe HTML: escaped, with ANSI colours as CSS classes and other escapes removed.

Agents print colour codes (SGR, ``ESC[...m``) and sometimes cursor movement or terminal titles.
Colours become ``<span class="ansi-fg-1 ansi-bold">`` (classes, never inline styles, so the CSP
needs no ``style-src 'unsafe-inline'``); every other control sequence is dropped. Text is always
escaped first: output can never become markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from html import escape

# CSI sequences (ESC [ params final), OSC (ESC ] ... BEL/ST), and lone two-byte escapes.
_ESCAPES = re.compile(
    r"\x1b\[(?P<params>[0-9;?]*)(?P<final>[@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
)
# Control characters other than tab and newline render as nothing useful.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Style:
    fg: str | None = None
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False

    def classes(self) -> str:
        names = []
        if self.fg:
            names.append(f"ansi-fg-{self.fg}")
        if self.bg:
            names.append(f"ansi-bg-{self.bg}")
        names += [
            n
            for n, on in (
                ("ansi-bold", self.bold),
                ("ansi-dim", self.dim),
                ("ansi-italic", self.italic),
                ("ansi-underline", self.underline),
            )
            if on
        ]
        return " ".join(names)


PLAIN = Style()


# SGR codes that set or clear one attribute.
_SIMPLE: dict[int, dict[str, object]] = {
    1: {"bold": True},
    2: {"dim": True},
    3: {"italic": True},
    4: {"underline": True},
    22: {"bold": False, "dim": False},
    23: {"italic": False},
    24: {"underline": False},
    39: {"fg": None},
    49: {"bg": None},
}


def is_colour(value: str) -> bool:
    """A colour a Style may hold: an index of the 16 basic colours, as a string."""
    return value.isascii() and value.isdigit() and int(value) < 16


def _colour(code: int) -> dict[str, object] | None:
    for low, field, offset in ((30, "fg", 0), (90, "fg", 8), (40, "bg", 0), (100, "bg", 8)):
        if low <= code <= low + 7:
            return {field: str(code - low + offset)}
    return None


def apply_sgr(style: Style, params: str) -> Style:
    codes = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        change = _SIMPLE.get(code) or _colour(code)
        if code == 0:
            style = PLAIN
        elif change is not None:
            style = replace(style, **change)  # type: ignore[arg-type]
        elif code in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
            # 256 colours: keep the 16 basic ones; the rest would need inline styles.
            value = codes[i + 2]
            colour = {"fg" if code == 38 else "bg": str(value) if value < 16 else None}
            style = replace(style, **colour)  # type: ignore[arg-type]
            i += 2
        elif code in (38, 48) and i + 4 < len(codes) and codes[i + 1] == 2:
            i += 4  # 24-bit colour: dropped (would need inline styles)
        i += 1
    return style


def to_html(text: str, style: Style = PLAIN) -> tuple[str, Style]:
    """Convert one chunk; returns the HTML and the style in force at its end (for the next)."""
    out: list[str] = []
    position = 0

    def emit(segment: str) -> None:
        segment = _CONTROLS.sub("", segment.replace("\r\n", "\n"))
        if not segment:
            return
        escaped = escape(segment, quote=False)
        classes = escape(style.classes(), quote=True)  # our own names; escaped all the same
        out.append(f'<span class="{classes}">{escaped}</span>' if classes else escaped)

    for match in _ESCAPES.finditer(text):
        emit(text[position : match.start()])
        position = match.end()
        if match.group("final") == "m":
            style = apply_sgr(style, match.group("params") or "")
    emit(text[position:])
    return "".join(out), style


_INCOMPLETE = re.compile(r"\x1b(?:\[[0-9;?]*|\][^\x07\x1b]*|\][^\x07]*\x1b)?\Z")


def split_incomplete(text: str) -> tuple[str, str]:
    """Hold back an escape sequence cut off at the end of a chunk, to prepend to the next one."""
    match = _INCOMPLETE.search(text, max(0, len(text) - 256))
    if match is None:
        return text, ""
    return text[: match.start()], text[match.start() :]


def strip(text: str) -> str:
    """Plain text with every escape sequence removed."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))
