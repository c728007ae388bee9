"""A run's working directory: what the user typed, checked and resolved, or the reason it can't be.

Each reason names the field (``cwd``) and what is wrong with it, so the API can answer 422 with
something a person can act on rather than a 500: a path that exists but is a file is "not a
directory", not "does not exist"; an unknown ``~user`` says so.
"""

from __future__ import annotations

import os
import stat
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
