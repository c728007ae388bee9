"""A run's working directory: what the user typed, checked and resolved, or the reason it can't be.

Each reason names the field (``cwd``) and what is wrong with it, so the API can answer 422 with
something a person can act on rather than a 500: a path that exists but is a file is "not a
directory", not "does not exist"; an unknown ``~user`` says so.

Looking at a directory is file system work (an automounted path can take a while), so the daemon
does it on a thread; :class:`Recent` remembers what it found usable for a moment, so that a burst
of launches in one directory costs one trip to a thread instead of one each.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path


class WorkdirError(ValueError):
    """The requested working directory cannot be used; the message says why."""


def resolve(requested: str | None) -> Path:
    """The absolute, symlink-free directory for ``requested`` (home when empty)."""
    raw = requested or "~"
    shown = repr(raw)
    if "\x00" in raw:
        raise WorkdirError(f"cwd {shown} contains a NUL character, which no path can hold")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WorkdirError(f"cwd {shown} is not valid Unicode ({exc.reason})") from exc
    try:
        path = Path(raw).expanduser()
    except RuntimeError as exc:  # "~nobody-here": no such user (or no home for "~")
        user = raw[1:].split("/", 1)[0] if raw.startswith("~") else raw
        who = f"unknown user {user!r}" if user else "no home directory is known"
        raise WorkdirError(f"cwd {shown}: {who}") from exc
    if not path.is_absolute():
        raise WorkdirError(f"cwd {shown} must be an absolute path (or start with ~)")
    try:
        path = path.resolve()
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise WorkdirError(f"cwd {str(path)!r} does not exist") from exc
    except PermissionError as exc:
        raise WorkdirError(f"cwd {str(path)!r} cannot be reached: permission denied") from exc
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise WorkdirError(f"cwd {str(path)!r} cannot be used: {reason}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise WorkdirError(f"cwd {str(path)!r} is not a directory")
    if not os.access(path, os.X_OK):
        raise WorkdirError(f"cwd {str(path)!r} cannot be entered: permission denied")
    return path


class Recent:
    """``resolve`` on a thread, remembering for ``keep`` seconds each request it answered with a
    directory (by what was asked: the same words, the same directory). Only success is
    remembered: a bad request is looked at every time, and answered every time. A directory
    removed meanwhile fails the run's start instead, saying so, as a program removed from PATH
    does; the cache holds what the last ``keep`` seconds asked for, nothing older."""

    def __init__(
        self,
        resolve: Callable[[str | None], Path],
        keep: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolve = resolve
        self._keep = keep
        self._clock = clock
        self._found: dict[str | None, tuple[Path, float]] = {}  # asked → (directory, until)

    async def resolve(self, requested: str | None) -> Path:
        now = self._clock()
        found, until = self._found.get(requested, (None, 0.0))
        if found is not None and now < until:
            return found
        directory = await asyncio.to_thread(self._resolve, requested)
        # Forget what has expired (a long-lived daemon is asked for many directories).
        self._found = {k: v for k, v in self._found.items() if v[1] > now}
        self._found[requested] = (directory, now + self._keep)
        return directory
