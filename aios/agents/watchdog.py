"""The watchdog: no agent outlives the daemon, even a daemon killed with SIGKILL.

Why a separate process
----------------------
A daemon killed with SIGKILL (or by the OOM killer, or a crash) runs no cleanup code, so it cannot
stop its agents itself, and nothing in the kernel does it either:

* ``PR_SET_PDEATHSIG`` (Linux only) signals a process when its parent dies, but it is per process
  and cleared in every fork: it reaches the agent, never the shells, test runners and language
  servers the agent starts.
* Each agent leads its own session and process group (``start_new_session=True``), which is what
  lets ``stop()`` signal all of it at once; by the same token, nothing sent to the daemon's own
  group (a Ctrl-C, ``kill -- -PGID``) reaches the agents, and they outlive the daemon.

So the daemon starts this tiny process once, in a session of its own, and keeps the only write end
of a pipe to it. The daemon writes ``+PGID`` when an agent's group starts and ``-PGID`` when it has
ended. When the pipe reaches end-of-file - the daemon exited, crashed or was killed; the kernel
closes its descriptors in every case - the watchdog sends SIGTERM to every group still registered,
gives them ``grace`` seconds, SIGKILLs what is left, and exits. A clean shutdown stops its runs
first and then closes the pipe: the set is empty and the watchdog just exits.

Limits
------
* A process that leaves its group (``setsid()``, ``setpgid()``) is out of reach of ``killpg``. On
  Linux the watchdog, when the pipe closes, first stops the groups with SIGSTOP, then walks
  ``/proc`` and stops every *descendant* of theirs, round after round until no new one appears, and
  only then sends SIGTERM (and SIGCONT) to all it found. Freezing first matters: a child that calls
  ``setsid()`` between a look and a signal would otherwise slip out. An escapee is caught while its
  parent chain to a member is intact; one whose parent already exited has been reparented to init
  and looks like any other process.
* A group is protected from ``register()`` on; a daemon killed in the few milliseconds between the
  fork and ``register()`` leaves that agent behind (the next daemon's ``kill_stale_group`` finds it
  only if its pgid was recorded).
* A ``fork()`` without ``exec()`` in the daemon would copy the write end and hold the pipe open, so
  the watchdog also treats a change of its parent pid as the daemon's death.
* If the watchdog itself is killed, the daemon notices at its next write (``BrokenPipeError``) and
  starts a new one, replaying the registered groups.

The watchdog runs as ``python -I -S .../watchdog.py``: it imports a few stdlib modules (os,
select, signal, sys, time, contextlib) and neither the ``aios`` package nor site-packages, so it
starts in about 10 ms and nothing on ``sys.path`` can shadow what it imports. The daemon side
(``Watchdog``) imports subprocess and logging inside its methods for the same reason.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import logging
    import subprocess

__all__ = ["DEFAULT_GRACE", "Watchdog", "WatchdogError", "main"]

DEFAULT_GRACE = 1.0  # seconds between SIGTERM and SIGKILL once the daemon is gone
_READY = b"ready\n"
_POLL = 0.02  # seconds between checks while the groups empty
_PARENT_CHECK = 1.0  # seconds between checks that the daemon is still our parent
_FREEZE_ROUNDS = 50  # a tree settles in two or three; the bound is against pid churn


# --- the watchdog process ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    args = sys.argv[1:] if argv is None else argv
    grace = float(args[0]) if args else DEFAULT_GRACE
    parent = os.getppid()
    os.write(1, _READY)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    groups = _follow(parent)
    if groups:
        listed = " ".join(map(str, sorted(groups)))
        _say(f"daemon (pid {parent}) is gone; stopping process groups {listed}")
        _stop(groups, grace)
    return 0


def _follow(parent: int) -> set[int]:
    """Keep the set of registered groups until the daemon goes away; return what is left."""
    groups: set[int] = set()
    pending = b""
    while True:
        try:
            readable, _, _ = select.select([0], [], [], _PARENT_CHECK)
            data = os.read(0, 4096) if readable else None
        except OSError:  # cannot happen with a pipe; if it does, act as if the daemon died
            return groups
        if data is None:
            if os.getppid() != parent:
                return groups
            continue
        if not data:
            return groups
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            try:
                pgid = int(line[1:])
            except ValueError:
                continue
            if pgid <= 1:
                continue
            if line.startswith(b"+"):
                groups.add(pgid)
            elif line.startswith(b"-"):
                groups.discard(pgid)


def _stop(groups: set[int], grace: float) -> None:
    found = _freeze(groups)
    _signal(groups, found, signal.SIGTERM)
    _signal(groups, found, signal.SIGCONT)  # the SIGTERM is handled (or kills) as they resume
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _anything_left(groups, found):
        time.sleep(_POLL)
    table = _proc_table()
    if table is not None:  # SIGKILL a pid only if it still names the same process
        found = {pid: start for pid, start in found.items() if pid in table}
        found = {pid: start for pid, start in found.items() if table[pid][3] == start}
    _signal(groups, found, signal.SIGKILL)


def _freeze(groups: set[int]) -> dict[int, int]:
    """Stop the groups and every descendant of theirs; return what was found: pid -> start time.

    Looking at the tree and then signalling it would miss a child that calls ``setsid()`` in
    between: it is a member when looked at and gone from the group by the ``killpg``. A stopped
    process can neither leave its group nor fork, so the groups are stopped first, then each
    round stops the descendants the last round found, until a round finds nothing new. Every pid
    found is signalled by pid as well as by group, which also covers a member caught half way
    through ``setsid()`` when it was stopped.
    """
    _signal(groups, {}, signal.SIGSTOP)
    found: dict[int, int] = {}
    for _ in range(_FREEZE_ROUNDS):
        table = _proc_table()
        if table is None:  # no /proc: the groups alone
            return found
        new = {
            pid: start
            for pid, start in _descendants(groups, table).items()
            if found.get(pid) != start
        }
        if not new:
            return found
        _signal(set(), new, signal.SIGSTOP)
        found.update(new)
    return found


def _signal(groups: set[int], pids: dict[int, int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _anything_left(groups: set[int], found: dict[int, int]) -> bool:
    table = _proc_table()
    if table is None:  # no /proc: zombies count as alive, and the wait may run to its deadline
        return any(_group_exists(pgid) for pgid in groups)
    return any(
        state != "Z" and (pgid in groups or found.get(pid) == start)
        for pid, (state, _, pgid, start) in table.items()
    )


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _proc_table() -> dict[int, tuple[str, int, int, int]] | None:
    """pid -> (state, ppid, pgid, start time in clock ticks) from /proc; None without /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    table = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
            fields = data[data.rindex(b")") + 2 :].split()  # the name may hold spaces and ")"
            table[int(name)] = (fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))
        except (OSError, ValueError, IndexError):
            continue
    return table


def _descendants(groups: set[int], table: dict[int, tuple[str, int, int, int]]) -> dict[int, int]:
    """The groups' members and all their descendants, in the groups or not: pid -> start time."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = [pid for pid, (_, _, pgid, _) in table.items() if pgid in groups]
    seen = set(todo)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen and child not in (1, os.getpid()):
                seen.add(child)
                todo.append(child)
    return {pid: table[pid][3] for pid in seen if table[pid][0] != "Z"}


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"aios watchdog: {message}\n".encode())


# --- the daemon's side ---------------------------------------------------------------------------


class WatchdogError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot start the watchdog: {reason}")


class Watchdog:
    """The daemon's end of the watchdog. Thread-safe; ``start`` and ``close`` are idempotent.

    ``register``/``unregister`` before ``start`` are remembered and sent when it starts.
    ``close`` with groups still registered makes the watchdog stop them: stop runs first.
    """

    def __init__(self, *, grace: float = DEFAULT_GRACE) -> None:
        self.grace = grace
        self._groups: set[int] = set()
        self._process: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self._closed = False
        self._lock = _thread.allocate_lock()

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start the watchdog and return once it is ready; raises ``WatchdogError``."""
        with self._lock:
            if self._closed:
                raise WatchdogError("it was closed")
            if self._process is None:
                self._start(timeout)

    def register(self, pgid: int) -> None:
        """Protect a group: call right after the spawn that created it."""
        if pgid <= 1:
            raise ValueError(f"not a process group id: {pgid}")
        with self._lock:
            self._groups.add(pgid)
            self._send(f"+{pgid}\n")

    def unregister(self, pgid: int) -> None:
        """Forget a group once all of it has ended (after ``AgentProcess.stop`` returned)."""
        with self._lock:
            self._groups.discard(pgid)
            self._send(f"-{pgid}\n")

    def close(self, timeout: float = 5.0) -> int | None:
        """Close the pipe and wait for the watchdog to exit; return its exit code."""
        import subprocess  # noqa: PLC0415  (see the module docstring)

        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            process = self._process
        if process is None:
            return None
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            _log().warning("watchdog %d still running after %s s; killing it", process.pid, timeout)
            process.kill()
            return process.wait()

    def _start(self, timeout: float) -> None:
        import subprocess  # noqa: PLC0415  (see the module docstring)

        if sys.platform == "win32":
            raise NotImplementedError("the watchdog needs a POSIX system")
        read_fd, write_fd = os.pipe()  # both close-on-exec: no agent inherits them
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), repr(self.grace)],
                stdin=read_fd,
                stdout=subprocess.PIPE,
                cwd="/",
                close_fds=True,  # not the listening socket, not the agents' pipes
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_fd)
            raise WatchdogError(str(exc)) from exc
        finally:
            os.close(read_fd)
        try:
            _await_ready(process, timeout)
            for pgid in sorted(self._groups):
                os.write(write_fd, f"+{pgid}\n".encode())
        except BaseException:
            os.close(write_fd)
            process.kill()
            process.wait()
            raise
        self._process, self._fd = process, write_fd

    def _send(self, line: str) -> None:
        """Write one line; if the watchdog died, start a new one (which gets the whole set)."""
        if self._fd is None:
            if self._closed:
                _log().warning("watchdog closed; not sending %r", line.strip())
            return
        try:
            os.write(self._fd, line.encode())  # under PIPE_BUF bytes: one atomic write
            return
        except BrokenPipeError:
            _log().warning("watchdog (pid %s) is gone; starting a new one", self.pid)
        os.close(self._fd)
        self._fd = None
        if self._process is not None:
            self._process.wait()
            self._process = None
        try:
            self._start(timeout=10.0)
        except (WatchdogError, OSError):
            _log().exception("cannot restart the watchdog: agents may outlive a crashed daemon")


def _await_ready(process: subprocess.Popen[bytes], timeout: float) -> None:
    assert process.stdout is not None
    with process.stdout:
        readable, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if readable else b""
    if line != _READY:
        if process.poll() is None:
            raise WatchdogError(f"no answer within {timeout} s")
        raise WatchdogError(f"it exited with code {process.returncode}")


def _log() -> logging.Logger:
    import logging  # noqa: PLC0415  (see the module docstring)

    return logging.getLogger("aios.agents.watchdog")


if __name__ == "__main__":
    sys.exit(main())
