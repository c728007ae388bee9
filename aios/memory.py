"""Giving freed memory back to the system: glibc's ``malloc_trim``.

Python frees what start-up and a burst of runs allocated, but glibc keeps the freed pages in its
heaps for later, so a long-lived daemon's resident size stays where its peak left it. Once it
has been idle for a while after runs, ``trim`` hands the free pages back (about a millisecond).
Not at start-up: there it gave nothing measurable back, and loading ctypes cost 0.3 MiB. Where
the C library is not glibc (macOS, Windows, musl), it does nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable

log = logging.getLogger("aios.memory")


@functools.cache
def _trimmer() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, found the first time it is wanted: ctypes and libffi are some
    0.3 MiB that a daemon which never trims does not need."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # noqa: PLC0415 - see the docstring

    try:
        # The C library already loaded, not searched for: this runs on the event loop, and
        # ctypes.util.find_library starts ldconfig (or gcc, where there is none) to search.
        function: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return function


def trim() -> None:
    """Return the C heap's free pages to the system (where the C library can)."""
    function = _trimmer()
    if function is not None:
        function(0)


IDLE = 5.0  # seconds after the last run of a burst ended
_later: asyncio.TimerHandle | None = None


def trim_later(delay: float = IDLE) -> None:
    """``trim`` ``delay`` seconds from now (on the running loop), once however often it is
    asked meanwhile: the last run of a burst ending is what counts."""
    global _later  # noqa: PLW0603 - one C heap per process, so one pending trim
    if _later is not None:
        _later.cancel()
    _later = asyncio.get_running_loop().call_later(delay, trim)
