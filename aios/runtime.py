"""The runtime file and the single-instance lock (DESIGN.md section 4).

``<run dir>/aios.json`` tells other processes (the CLI, a second ``aios``) where the running daemon
listens and which token it accepts. It is written atomically with mode 0600 once the port accepts
connections, and removed on exit. The OS file lock next to it is what actually makes the daemon a
single instance: the kernel drops it when the process dies, however it dies, so a runtime file left
behind by a crash is recognisably stale and is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from aios import private
from aios.paths import ensure_private_dir

# Every CLI command reads the runtime file, so this module imports little: no dataclasses (whose
# import of inspect costs a command more than the rest of it), psutil only on Windows.


class RuntimeFileError(Exception):
    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")


class RuntimeInfo(NamedTuple):
    pid: int
    port: int
    url: str
    token: str
    version: str
    started_at: str

    @classmethod
    def from_json(cls, path: Path, data: object) -> RuntimeInfo:
        if not isinstance(data, dict):
            raise RuntimeFileError(path, "not a JSON object")
        try:
            return cls(
                pid=_typed(data, "pid", int),
                port=_typed(data, "port", int),
                url=_typed(data, "url", str),
                token=_typed(data, "token", str),
                version=_typed(data, "version", str),
                started_at=_typed(data, "started_at", str),
            )
        except (KeyError, TypeError) as exc:
            raise RuntimeFileError(path, f"missing or malformed field {exc}") from exc

    def process_alive(self) -> bool:
        if sys.platform == "win32":
            import psutil  # noqa: PLC0415 - see the note on imports above

            return bool(psutil.pid_exists(self.pid))
        try:
            os.kill(self.pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, as another user's process
        return True


def _typed(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(key)
    return value


def write(path: Path, info: RuntimeInfo) -> None:
    """Write atomically: readers never see a half-written file, and the mode is 0600 from birth."""
    import tempfile  # noqa: PLC0415 - only the daemon writes the file

    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".aios-", suffix=".json", dir=path.parent)  # 0600
    try:
        os.fchmod(fd, private.FILE_MODE)  # exactly, whatever the umask took from it
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info._asdict(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read(path: Path) -> RuntimeInfo | None:
    """The runtime file's contents, or None if there is none. A malformed file raises."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RuntimeFileError(path, exc.strerror or str(exc)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuntimeFileError(path, f"not valid JSON ({exc})") from exc
    return RuntimeInfo.from_json(path, data)


def restore(path: Path, info: RuntimeInfo) -> bool:
    """Write the file again if it is gone or unreadable; True if it had to be restored.

    A file naming another process is left alone: only a daemon holding the lock writes here, and
    two daemons fighting over one file would be worse than one of them being hard to find.
    """
    try:
        if read(path) is not None:
            return False
    except RuntimeFileError:
        pass
    write(path, info)
    return True


def remove(path: Path, pid: int) -> None:
    """Remove the runtime file if it is still ours (a newer daemon may have replaced it)."""
    with contextlib.suppress(FileNotFoundError, RuntimeFileError):
        info = read(path)
        if info is not None and info.pid == pid:
            path.unlink()


class InstanceLock:
    """The OS-level lock that makes one daemon per user (per ``AIOS_HOME``).

    ``flock`` on POSIX, a one-byte ``msvcrt`` lock on Windows: the kernel drops either when the
    process ends, however it ends. (It was the filelock package, whose import alone - its
    asyncio API included - cost the idle daemon 0.75 MiB of its 10 % over a bare app.) The
    descriptor is not inherited by agents (Python opens files non-inheritable). Any thread may
    release what another acquired: the tray acquires on the main thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        import threading  # noqa: PLC0415 - only the daemon takes the lock

        self._fd: int | None = None
        self._mutex = threading.Lock()

    def try_acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""
        ensure_private_dir(self.path.parent)
        with self._mutex:
            if self._fd is not None:
                return True
            fd = self._take()
            if fd is None:
                return False
            self._fd = fd
            return True

    def _take(self) -> int | None:
        """A descriptor holding the lock on the file at ``path``, or None if another has it."""
        fd = private.open_fd(self.path, os.O_RDWR)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return None
        return fd

    def release(self) -> None:
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                _unlock(fd)
            os.close(fd)

    def renew(self) -> bool:
        """Lock the file again if it was deleted while held; False if another process got it.

        A lock on a deleted file guards nothing: the next daemon would create a new file and
        lock that. Returns True when the lock is (again) on the file at ``path``.
        """
        with self._mutex:
            if self._fd is None or self.path.exists():
                return self._fd is not None
            ensure_private_dir(self.path.parent)
            fresh = self._take()
            if fresh is None:
                return False
            old, self._fd = self._fd, fresh
        with contextlib.suppress(OSError):
            _unlock(old)
        os.close(old)
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_held(path: Path) -> bool:
    """Does some process hold the instance lock at ``path``? (Takes it for an instant if free.)

    A daemon starting at that instant finds the lock taken and retries (``Service._prepare``).
    """
    if not path.exists():  # every daemon creates it: no file, no daemon
        return False
    probe = InstanceLock(path)
    if probe.try_acquire():
        probe.release()
        return False
    return True


def _lock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl  # noqa: PLC0415

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415

        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl  # noqa: PLC0415

        fcntl.flock(fd, fcntl.LOCK_UN)
