"""Whether a terminal run's program is blocked reading its terminal: the shell's eyes for
``awaiting_input`` (the core asks with a ``Probe`` once the run has been quiet).

Who reads a terminal is its *foreground process group* (``tcgetpgrp`` on the master: a shell
puts the job it runs there; the program itself otherwise). On Linux every process of that group
(found in the run's tree) is looked at in ``/proc``:

* ``/proc/PID/stat``: it must be sleeping (``S``); one that runs, or waits for the disk, is busy.
* ``/proc/PID/syscall``: the system call it sleeps in, with its arguments. A ``read``/``readv``
  on a descriptor that is the run's terminal, or a ``poll``/``select``/``epoll`` wait in a process
  that has the terminal open (a TUI waits for keys that way, readline too) is waiting for input.
* Where ``syscall`` cannot be read (another architecture, a kernel or sandbox that hides it),
  ``/proc/PID/wchan`` names the kernel function it sleeps in: ``n_tty_read``, ``wait_woken``
  (where a terminal read sleeps), or a poll/select/epoll wait, again with the terminal open.

At least one process must be waiting so, and all of them asleep. A program that sleeps in a
poll for the network with its terminal open (a TUI waiting for its model without a spinner)
looks the same: the quiet time before the look (1.5 s) is what tells a person apart.

Other systems: no ``/proc``; the foreground group all sleeping (psutil) after the quiet time
counts as waiting for input - coarser, and documented as such (docs/terminal.md).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import TYPE_CHECKING

from aios.lazy import lazy_import

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_import("psutil")

__all__ = ["reads_terminal"]

# System call numbers: reads (the fd is the first argument) and waits (poll, select, epoll).
_CALLS: dict[str, tuple[frozenset[int], frozenset[int]]] = {
    "x86_64": (frozenset({0, 19}), frozenset({7, 23, 232, 270, 271, 281, 441})),
    "aarch64": (frozenset({63, 65}), frozenset({22, 72, 73, 441})),
}
_READ_WCHAN = frozenset({"n_tty_read", "wait_woken"})
_WAIT_WCHAN = frozenset(
    {"do_select", "core_sys_select", "do_sys_poll", "poll_schedule_timeout", "ep_poll",
     "do_epoll_wait"}
)  # fmt: skip


def reads_terminal(leader: int, foreground: int, tty: str) -> bool:
    """Whether the foreground group ``foreground`` of the run led by ``leader`` is blocked
    reading its terminal ``tty`` (a path such as ``/dev/pts/3``). Blocks briefly (``/proc``):
    call it in a thread."""
    members = _group_members(leader, foreground)
    if not members:
        return False
    if not sys.platform.startswith("linux"):
        return all(_sleeping(pid) for pid in members)
    waiting = False
    for pid in members:
        state = _state(pid)
        if state is None:  # gone meanwhile
            continue
        if state != "S":
            return False
        waiting = waiting or _waits_on(pid, tty)
    return waiting


def _group_members(leader: int, pgid: int) -> list[int]:
    try:
        root = psutil.Process(leader)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    found = []
    for proc in procs:
        with contextlib.suppress(OSError):
            if os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
    return found


def _sleeping(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_SLEEPING, psutil.STATUS_IDLE)
    except psutil.Error:
        return False


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0] if fields else None


def _waits_on(pid: int, tty: str) -> bool:
    calls = _CALLS.get(platform.machine())
    syscall = _read(f"/proc/{pid}/syscall") if calls is not None else None
    if calls is not None and syscall and syscall[0].isdigit():
        parts = syscall.split()
        number = int(parts[0])
        reads, waits = calls
        if number in reads and len(parts) > 1:
            return _fd_is(pid, int(parts[1], 16), tty)
        return number in waits and _has_open(pid, tty)
    wchan = _read(f"/proc/{pid}/wchan")
    if wchan in _READ_WCHAN:
        return _has_open(pid, tty)
    return wchan in _WAIT_WCHAN and _has_open(pid, tty)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read().strip()
    except OSError:
        return None


def _fd_is(pid: int, fd: int, tty: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == tty
    except OSError:
        return False


def _has_open(pid: int, tty: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    return any(_fd_is(pid, int(fd), tty) for fd in fds if fd.isdigit())
