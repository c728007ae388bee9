"""ANSI escape codes in agent output: what they mean for how text looks.

Agents print colour codes (SGR, ``ESC[...m``: the 16 basic colours, the 256-colour palette and
24-bit "truecolour"), cursor movement within a line (progress bars), and sometimes terminal titles
or hyperlinks. This module tokenizes that and turns SGR into a ``Style``; ``aios.server.terminal``
applies the cursor movement. Styles become HTML as CSS classes (``ansi-fg-196``) or, for 24-bit
colours, ``data-fg="#ff8700"`` that app.js applies through the CSSOM: never a ``style``
attribute, so the CSP needs no ``style-src 'unsafe-inline'``. Text is always escaped.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, fields, replace
from html import escape
from typing import Any

# One token of output that is not plain text. OSC bodies stop at a newline: "\n" is always a
# newline, so byte offsets of line starts can be found in the raw bytes (aios.server.live).
TOKEN = re.compile(
    r"\x1b\[(?P<params>[0-9;:<=>?]*)[ -/]*(?P<final>[@-~])"  # CSI: cursor, erase, SGR...
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlink
    r"|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]"  # other escapes: charset (ESC ( B), save cursor (ESC 7)...
    r"|(?P<control>[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f])"  # controls (tab is text)
    r"|\x1b"  # a lone ESC
)
# An escape sequence cut off at the end of a chunk: held back and prepended to the next one.
_INCOMPLETE = re.compile(
    r"\x1b(?:\[[0-9;:<=>?]*[ -/]*|\][^\x07\x1b\n]*|\][^\x07\n]*\x1b|[PX^_][^\x1b\n]*\x1b?"
    r"|[ -/]+)?\Z"
)
_RGB = re.compile(r"#[0-9a-f]{6}")

BASIC = 16
PALETTE = 256


def is_colour(value: str) -> bool:
    """A colour a Style may hold: a palette index ("0"-"255") or "#rrggbb"."""
    if _RGB.fullmatch(value):
        return True
    return value.isascii() and value.isdigit() and len(value) <= 3 and int(value) < PALETTE


@dataclass(frozen=True)
class Style:
    fg: str | None = None  # palette index as a string, or "#rrggbb"
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    inverse: bool = False

    def span(self) -> str:
        """The opening tag for text in this style; empty for plain text."""
        return _opening_tag(self)

    def _span(self) -> str:
        fg, bg = (self.bg, self.fg) if self.inverse else (self.fg, self.bg)
        names: list[str] = []
        data: list[str] = []
        for side, value in (("fg", fg), ("bg", bg)):
            if value is None:
                if self.inverse:  # the default colours, swapped
                    names.append(f"ansi-{side}-inverse")
            elif value.startswith("#"):
                names.append(f"ansi-{side}-rgb")
                data.append(f' data-{side}="{escape(value, quote=True)}"')
            else:
                names.append(f"ansi-{side}-{value}")
        names += [f"ansi-{flag}" for flag in _FLAGS if getattr(self, flag)]
        if not names:
            return ""
        return f'<span class="{escape(" ".join(names), quote=True)}"{"".join(data)}>'

    def html(self, text: str) -> str:
        escaped = escape(text, quote=False)
        opening = self.span()
        return f"{opening}{escaped}</span>" if opening and escaped else escaped

    def to_state(self) -> str:
        """Compact JSON, for a page to hand its renderer's state to its live stream."""
        return json.dumps([getattr(self, f.name) for f in fields(self)], separators=(",", ":"))

    @classmethod
    def from_state(cls, raw: str) -> Style:
        """The inverse of ``to_state``; ValueError (saying what is wrong) for anything else."""
        try:
            values: Any = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ValueError("not JSON") from exc
        names = [f.name for f in fields(cls)]
        if not isinstance(values, list) or len(values) != len(names):
            raise ValueError(f"not a list of {len(names)} values ({', '.join(names)})")
        for name, value in zip(names[:2], values[:2], strict=True):
            if value is not None and not (isinstance(value, str) and is_colour(value)):
                raise ValueError(f"{name} {value!r} is not a colour")
        for name, value in zip(names[2:], values[2:], strict=True):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        return cls(*values)


PLAIN = Style()


# Output uses a handful of styles over and over: each tag, and each SGR change, computed once.
@functools.lru_cache(maxsize=1024)
def _opening_tag(style: Style) -> str:
    return style._span()


_FLAGS = ("bold", "dim", "italic", "underline", "strike")

# SGR codes that set or clear attributes.
_SIMPLE: dict[int, dict[str, Any]] = {
    1: {"bold": True},
    2: {"dim": True},
    3: {"italic": True},
    4: {"underline": True},
    7: {"inverse": True},
    9: {"strike": True},
    21: {"underline": True},  # double underline: shown as one
    22: {"bold": False, "dim": False},
    23: {"italic": False},
    24: {"underline": False},
    27: {"inverse": False},
    29: {"strike": False},
    39: {"fg": None},
    49: {"bg": None},
}


def _basic(code: int) -> dict[str, Any] | None:
    for low, side, offset in ((30, "fg", 0), (90, "fg", 8), (40, "bg", 0), (100, "bg", 8)):
        if low <= code <= low + 7:
            return {side: str(code - low + offset)}
    return None


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def _extended(values: list[str]) -> tuple[str | None, int]:
    """``5;N`` or ``2;R;G;B`` after a 38/48/58: the colour, and how many values it used."""
    kind = _number(values[0]) if values else None
    if kind == 5 and len(values) >= 2:
        index = _number(values[1])
        return (str(index) if index is not None and index < PALETTE else None), 2
    if kind == 2 and len(values) >= 4:
        rgb = [_number(v) for v in values[1:4]]
        if all(c is not None and c < 256 for c in rgb):
            return "#" + "".join(f"{c:02x}" for c in rgb if c is not None), 4
        return None, 4
    return None, len(values) if kind in (2, 5) else 1


def _with_colour(style: Style, code: int, colour: str) -> Style:
    return replace(style, fg=colour) if code == 38 else replace(style, bg=colour)


@functools.lru_cache(maxsize=4096)
def apply_sgr(style: Style, params: str) -> Style:
    """The style after ``ESC[<params>m``; unknown codes are ignored, as terminals do."""
    if not params.strip(";"):
        return PLAIN
    groups = params.split(";")
    i = 0
    while i < len(groups):
        group = groups[i]
        if ":" in group:  # ITU T.416 form, all in one group: 38:5:208, 38:2::255:135:0, 4:3
            parts = group.split(":")
            code = _number(parts[0])
            if code in (38, 48):
                rgb = parts[1:]
                if len(rgb) == 5 and rgb[0] == "2":  # 2:<colour space>:R:G:B
                    rgb = ["2", *rgb[2:]]
                colour, _ = _extended(rgb)
                if colour is not None:
                    style = _with_colour(style, code, colour)
            elif code == 4:
                style = replace(style, underline=parts[1:2] != ["0"])
            i += 1
            continue
        code = _number(group) if group else 0
        if code == 0:
            style = PLAIN
        elif code in (38, 48, 58):
            colour, used = _extended(groups[i + 1 :])
            if colour is not None and code != 58:  # 58: underline colour, not shown
                style = _with_colour(style, code, colour)
            i += used
        elif code is not None and (change := _SIMPLE.get(code) or _basic(code)):
            style = replace(style, **change)
        i += 1
    return style


def strip(text: str) -> str:
    """Plain text: every escape sequence and control character removed, newlines and tabs kept.

    No cursor movement is applied (``aios.server.terminal`` does that): for text checks and logs.
    """
    return TOKEN.sub(
        lambda m: "\n" if m.group("control") == "\n" else "", text.replace("\r\n", "\n")
    )


def split_incomplete(text: str) -> tuple[str, str]:
    """Hold back an escape sequence cut off at the end of a chunk, to prepend to the next one."""
    match = _INCOMPLETE.search(text, max(0, len(text) - 256))
    if match is None:
        return text, ""
    return text[: match.start()], text[match.start() :]
