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
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock, Timeout

from aios import private
from aios.paths import ensure_private_dir


class RuntimeFileError(Exception):
    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class RuntimeInfo:
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
        return psutil.pid_exists(self.pid)


def _typed(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(key)
    return value


def write(path: Path, info: RuntimeInfo) -> None:
    """Write atomically: readers never see a half-written file, and the mode is 0600 from birth."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".aios-", suffix=".json", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(info), handle, indent=2)
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
    """The OS-level lock that makes one daemon per user (per ``AIOS_HOME``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # thread_local=False: the tray acquires on the main thread and may release from another.
        self._lock = FileLock(path, mode=0o600, thread_local=False, preserve_lock_file=True)

    def try_acquire(self) -> bool:
        ensure_private_dir(self.path.parent)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        private.tighten(self.path)  # filelock's mode applies only to a file it creates
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def renew(self) -> bool:
        """Lock the file again if it was deleted while held; False if another process got it.

        A lock on a deleted file guards nothing: the next daemon would create a new file and
        lock that. Returns True when the lock is (again) on the file at ``path``.
        """
        if not self._lock.is_locked or self.path.exists():
            return self._lock.is_locked
        ensure_private_dir(self.path.parent)
        fresh = FileLock(self.path, mode=0o600, thread_local=False, preserve_lock_file=True)
        try:
            fresh.acquire(timeout=0)
        except Timeout:
            return False
        old, self._lock = self._lock, fresh
        old.release(force=True)
        return True

    @property
    def held(self) -> bool:
        return self._lock.is_locked


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
