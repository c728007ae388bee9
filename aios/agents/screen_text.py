"""What a terminal run's output says, read without drawing it (no pyte: the daemon imports this
at start-up, and pyte, in ``aios.agents.screen``, only when a terminal run needs a screen): the
size limit, a terminal's answers to queries, and ``flood_cut``, which shortens a flood of plain
lines to what it leaves on the screen (see ``aios.agents.screen``).
"""

from __future__ import annotations

import re

__all__ = ["FLOOD", "MAX_SIZE", "VIEWER_REPLY", "flood_cut"]

MAX_SIZE = 500  # columns or rows at most (the protocol's limit)

# What a terminal answers to a query (cursor position report, device attributes): a viewer's
# terminal answers too, but the model already has (see the module docstring).
VIEWER_REPLY = re.compile(r"(?:\x1b\[\d+;\d+R|\x1b\[[?>][\d;]*c)+")


FLOOD = 16 * 1024  # characters of output from which a prefix that scrolls away is cut short
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
# Text, tabs, newlines and carriage returns only: no control character, no other sequence.
_PLAIN = re.compile(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*")


def flood_cut(text: str, rows: int) -> str:
    """``text``, or what leaves a screen of ``rows`` rows exactly as ``text`` would, shorter:
    a prefix of plain lines and colours that scrolls away entirely under the ``rows + 1`` lines
    after it becomes its last colours and ``rows`` newlines (without a scrolling region, which
    a program that floods rarely sets)."""
    if len(text) < FLOOD:
        return text
    cut = len(text)
    for _ in range(rows + 2):
        cut = text.rfind("\n", 0, cut)
        if cut < 0:
            return text
    prefix = text[: cut + 1]
    if prefix.count("\n") < rows or not _PLAIN.fullmatch(_SGR.sub("", prefix)):
        return text
    colours = _SGR.findall(prefix)
    resets = [
        i for i, params in enumerate(colours) if params in ("", "0") or params.startswith("0;")
    ]
    kept = colours[resets[-1] :] if resets else colours
    return "".join(f"\x1b[{params}m" for params in kept) + "\r\n" * rows + text[cut + 1 :]
