"""Giving freed memory back to the system: glibc's ``malloc_trim``.

Python frees what start-up and a burst of runs allocated, but glibc keeps the freed pages in its
heaps for later, so a long-lived daemon's resident size stays where its peak left it. Once the
daemon is ready, and once it has been idle for a while after runs, ``trim`` hands the free pages
back (about a millisecond). Where the C library is not glibc (macOS, Windows, musl), it does
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable

log = logging.getLogger("aios.memory")


def _trimmer() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return function


_TRIM = _trimmer()


def trim() -> None:
    """Return the C heap's free pages to the system (where the C library can)."""
    if _TRIM is not None:
        _TRIM(0)


IDLE = 5.0  # seconds after the last run of a burst ended
_later: asyncio.TimerHandle | None = None


def trim_later(delay: float = IDLE) -> None:
    """``trim`` ``delay`` seconds from now (on the running loop), once however often it is
    asked meanwhile: the last run of a burst ending is what counts."""
    global _later  # noqa: PLW0603 - one C heap per process, so one pending trim
    if _later is not None:
        _later.cancel()
    _later = asyncio.get_running_loop().call_later(delay, trim)
