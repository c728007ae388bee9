"""The disk AIOS writes to: telling a full one from other failures, and naming it plainly.

A write that fails for lack of space (ENOSPC, or EDQUOT: the user's quota) is not a bug of
AIOS and not a reason for anything to stop: what cannot be kept is dropped and the user is told
which disk is full. Everything here is a system call or two, cheap enough for every launch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# Below this much free space a launch is refused: its database rows and first output would
# fail anyway, and a run that starts only to lose its output helps nobody.
MIN_FREE = 256 * 1024


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged user may still write where ``path`` is; None if it cannot be told."""
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def read_only(path: Path) -> bool:
    """Whether the file system holding ``path`` refuses writes as read-only: mounted so, or
    made so by an error (ext4's errors=remount-ro does not show in the mount flags). Only asked
    after an I/O error: it may create and remove a small file beside ``path``."""
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return True
        fd, probe = tempfile.mkstemp(prefix=".aios-probe-", dir=path.parent)
    except OSError as exc:
        return exc.errno == errno.EROFS
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return False


def full_message(path: Path) -> str:
    """How a full disk is named to the user: the disk (its mount point) and the path."""
    return f"the disk holding {path} (mounted at {mount_point(path)}) is full"
