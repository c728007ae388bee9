"""Files and directories only their owner can read: 0600 files in 0700 directories.

Prompts, agent output and the daemon's log hold code and sometimes secrets, so every file AIOS
writes is private to the user, whatever the umask, and files an older version left readable are
tightened when the daemon starts. (The agents' own files are theirs: AIOS never changes the
umask they inherit.)
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if need be; make the directory itself 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten(path, DIR_MODE)


def tighten(path: Path, mode: int = FILE_MODE) -> None:
    """Set ``mode`` on ``path`` if it exists with another one."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)


def tighten_all(paths: Iterable[Path]) -> None:
    for path in paths:
        tighten(path)


def create(path: Path) -> None:
    """Make sure ``path`` exists as a 0600 file (without touching what it holds)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    tighten(path)


def open_append(path: Path) -> BinaryIO:
    """Open for appending, creating the file 0600 (O_CREAT's mode, not the umask's)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    return os.fdopen(fd, "ab")


def write_text(path: Path, text: str) -> None:
    """Replace ``path``'s content; the file is 0600 whether it existed or not."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tighten(path)


def sqlite_files(database: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it (which copy its mode when created)."""
    return [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
