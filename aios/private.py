"""Files and directories only their owner can read: 0600 files in 0700 directories.

Prompts, agent output and the daemon's log hold code and sometimes secrets, so every file AIOS
writes is private to the user, whatever the umask, and files an older version left readable are
tightened when the daemon starts. (The agents' own files are theirs: AIOS never changes the
umask they inherit.)

The mode is set when a file or directory is made, never some time later: ``open`` and ``mkdir``
are given it (so nothing is ever looser than it, as the umask only takes bits away), then
``fchmod``/``chmod`` set it exactly (a umask such as 0o277 would leave a file the owner cannot
write). A file that already existed is made private through the descriptor just opened.
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


def make_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700; directories that exist are left as
    they are (the XDG base directory rule: what AIOS creates is the user's alone)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made meanwhile by someone else (another AIOS command): theirs to set
        folder.chmod(DIR_MODE)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if need be; make the directory itself 0700."""
    make_dirs(path)
    tighten(path, DIR_MODE)


def make_private_dir(path: Path) -> None:
    """Create the directory ``path``, 0700, in an existing parent; FileExistsError if it is
    there already."""
    path.mkdir(mode=DIR_MODE)
    path.chmod(DIR_MODE)


def tighten(path: Path, mode: int = FILE_MODE) -> None:
    """Set ``mode`` on ``path`` if it exists with another one."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)


def tighten_all(paths: Iterable[Path]) -> None:
    for path in paths:
        tighten(path)


def open_fd(path: Path | str, flags: int) -> int:
    """``os.open`` with O_CREAT, the file 0600 from its first moment, whether it existed or not."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create(path: Path) -> None:
    """Make sure ``path`` exists as a 0600 file (without touching what it holds)."""
    os.close(open_fd(path, os.O_WRONLY))


def open_append(path: Path) -> BinaryIO:
    """Open for appending, creating the file 0600."""
    return os.fdopen(open_fd(path, os.O_WRONLY | os.O_APPEND), "ab")


def write_text(path: Path, text: str) -> None:
    """Replace ``path``'s content; the file is 0600 whether it existed or not."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path``'s content; the file is 0600 whether it existed or not."""
    with os.fdopen(open_fd(path, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
        handle.write(data)


def copy(source: Path, target: Path) -> None:
    """Copy ``source``'s content and times (not its mode) to a new 0600 file ``target``."""
    import shutil  # noqa: PLC0415 - not for every CLI command, which all import this module

    with (
        source.open("rb") as reading,
        os.fdopen(open_fd(target, os.O_WRONLY | os.O_EXCL), "wb") as writing,
    ):
        shutil.copyfileobj(reading, writing)
        times = os.fstat(reading.fileno())
    os.utime(target, ns=(times.st_atime_ns, times.st_mtime_ns))


def sqlite_files(database: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it (which copy its mode when created)."""
    return [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
