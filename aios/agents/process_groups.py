"""Process-group housekeeping for agents: is a group (or a process) still there, signal what is,
find who holds an agent's output pipe, and kill a group a previous daemon left running.

Pids are reused, so nothing here signals a pid on trust: psutil checks that a remembered process
is still the one it was (its start time), a stale group is killed only while its leader is gone
or still the agent that started at the recorded time (``kill_stale_group``), and zombies - which
PID 1 in a container may never reap, and which keep their group "existing" for
``killpg(pgid, 0)`` - do not count as alive.

Used by ``aios.agents.process`` (stopping one agent) and by the supervisor at start (stale groups).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aios.lazy import lazy_import

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_import("psutil")  # loaded by the first run, not by an idle daemon

__all__ = [
    "alive",
    "create_time",
    "group_has_live_member",
    "group_members",
    "kill_stale_group",
    "pgid_of",
    "pipe_holders",
    "same_start",
    "session_members",
    "signal_each",
]

_CREATE_TIME_SLACK = 1.0  # seconds; create times from psutil are rounded to clock ticks


def pipe_holders(inodes: Iterable[int], ttys: Iterable[str] = ()) -> list[psutil.Process]:
    """Processes other than this one with one of the pipes ``inodes`` (or one of the terminals
    ``ttys``, by path) open (Linux ``/proc``)."""
    targets = {f"pipe:[{inode}]" for inode in inodes} | set(ttys)
    if not targets or not os.path.isdir("/proc/self/fd"):
        return []
    found: list[psutil.Process] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:  # gone, or another user's
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) in targets:
                        found.append(psutil.Process(int(entry.name)))
                        break
                except (OSError, psutil.Error):
                    continue
    return found


def kill_stale_group(pgid: int, create_time: float | None) -> bool:
    """SIGKILL the group of an agent left running by a previous daemon; True if it was there.

    The leader (pid == pgid) must still be that agent: its start time must match ``create_time``
    (when given) within a second. A live leader that does not match is a reused pid and is left
    alone. With the leader gone, the group id cannot have been reused while members remain, so
    they are killed. So are the other groups of its session (the agent led one): the jobs of a
    shell on a terminal run, each in a group of its own (a session id is not reused either
    while the session has a member).
    """
    if pgid <= 1 or pgid == os.getpgrp() or not _is_stale_leader(pgid, create_time):
        return False
    session = session_members(pgid) if pgid != os.getsid(0) else []
    if not group_has_live_member(pgid) and not session:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    signal_each(session, signal.SIGKILL)
    return True


def session_members(sid: int) -> list[psutil.Process]:
    """The live processes of session ``sid`` (on systems with ``getsid``)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.getsid(proc.pid) == sid and alive(proc):
                found.append(proc)
    return found


def _is_stale_leader(pgid: int, create_time: float | None) -> bool:
    """Whether pid ``pgid`` is gone, or still the group leader that started at ``create_time``."""
    try:
        leader = psutil.Process(pgid)
        if pgid_of(pgid) not in (pgid, None):  # None: a zombie, on some systems
            return False  # a process with that pid that leads no group of that id
        return create_time is None or same_start(leader.create_time(), create_time)
    except psutil.NoSuchProcess:
        return True  # the leader is gone; its group may still have members
    except psutil.Error:
        return False


def group_has_live_member(pgid: int) -> bool:
    """Whether any process in the group is more than a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[psutil.Process]:
    return [proc for proc in psutil.process_iter() if pgid_of(proc.pid) == pgid and alive(proc)]


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_each(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)  # psutil checks the pid still names the same process


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def same_start(a: float, b: float) -> bool:
    return abs(a - b) <= _CREATE_TIME_SLACK


def create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return time.time()  # already gone and reaped: now is within moments of its start
