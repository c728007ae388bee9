"""Starting an agent: ``spawn`` forks and executes it as the leader of a new session and process
group, connects its pipes (or its pseudo-terminal) to the event loop, and watches for the
leader's exit; the result is an ``AgentProcess`` (``aios.agents.process``), which does
everything after.

With ``terminal=(cols, rows)`` the agent gets a pseudo-terminal instead of pipes
(``os.openpty``): the slave is its stdin, stdout and stderr and, once it leads its new session,
its controlling terminal (``TIOCSCTTY``, in the child between fork and exec); the daemon keeps
the master, reads the output from it and writes the viewers' keystrokes to it. The session
and the process group are the same as a piped agent's, so stopping, the watchdog and
``kill_stale_group`` treat both alike.

The fork and exec happen on one worker thread for all spawns: ``Popen`` returns once the program
has been executed (or has failed to be), which takes milliseconds on a busy machine, and the
event loop keeps serving meanwhile. The leader's exit is noticed on the loop through a pidfd
(Linux 5.3+; elsewhere a thread waits for it), never by a thread per agent. A spawn cancelled
while the thread forks kills whatever it started: nothing runs unsupervised.

Exceptions: ``SpawnError`` (the program could not be started at all: the reason in words).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from aios.agents.pipes import PipeReader
from aios.agents.process import AgentProcess
from aios.agents.process_groups import create_time

__all__ = ["SpawnError", "heed_for_children", "spawn"]

PIPE_SIZE = 1024 * 1024  # asked for each output pipe (process.READ_LIMIT is read at a time)


class SpawnError(Exception):
    """The agent could not be started at all (missing or non-executable program, bad cwd)."""

    def __init__(self, program: str, reason: str) -> None:
        self.program = program
        self.reason = reason
        super().__init__(f"cannot start {program!r}: {reason}")


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    merge_stderr: bool = True,
    stdin: bool = False,
    terminal: tuple[int, int] | None = None,
) -> AgentProcess:
    """Start ``argv`` (never through a shell) as the leader of a new session and process group.

    stdin is /dev/null (with ``stdin=True``, a pipe for ``write_line``); stdout and stderr are
    merged into one pipe, read with ``read()``, or with ``merge_stderr=False`` kept apart
    (``read()`` and ``read_stderr()``: a structured stream on stdout must not be interleaved
    with diagnostics). The agent sees exactly ``env`` and inherits no other file descriptor.
    ``terminal=(cols, rows)``: a pseudo-terminal of that size instead (``merge_stderr`` and
    ``stdin`` do not apply: it reads and writes its terminal, and ``write`` types into it).

    The fork and exec happen on a worker thread: ``Popen`` returns once the program has been
    executed (or has failed to be), which takes milliseconds on a busy machine, and the event
    loop keeps serving meanwhile instead of every request waiting behind every spawn. One thread
    for all spawns: agents start in the order they were admitted, one fork at a time. The output
    pipes are then read by the loop, and the leader's exit is noticed by the loop too, through a
    pidfd (Linux 5.3+; elsewhere a thread waits for it), never by a thread per agent.
    """
    if sys.platform == "win32":
        raise NotImplementedError("agent process groups need a POSIX system")
    if not argv:
        raise SpawnError("", "empty command")
    program = argv[0]
    loop = asyncio.get_running_loop()
    if terminal is not None:
        spawning = _spawner().submit(_popen_terminal, list(argv), cwd, dict(env), terminal)
    else:
        spawning = _spawner().submit(_popen, list(argv), cwd, dict(env), merge_stderr, stdin)
    try:
        popen, created, tty = await asyncio.wrap_future(spawning, loop=loop)
    except asyncio.CancelledError:
        # Cancelled while the thread forks: whatever it starts must not run unsupervised.
        spawning.add_done_callback(_kill_if_started)
        raise
    except OSError as exc:
        raise SpawnError(program, _spawn_failure(program, cwd, exc)) from exc
    except ValueError as exc:  # an embedded NUL byte
        raise SpawnError(program, str(exc)) from exc
    if tty is not None:
        return await _attach_terminal(loop, popen, created, tty)
    assert popen.stdout is not None
    try:
        _enlarge_pipe(popen.stdout.fileno(), PIPE_SIZE)
        output = PipeReader(loop, popen.stdout)
        errors = PipeReader(loop, popen.stderr) if popen.stderr else None
        writer = await _writer(loop, popen.stdin) if popen.stdin else None
        exited = _watch_exit(popen, loop)
    except BaseException:
        _kill_and_reap(popen)
        raise
    return AgentProcess(popen, output, exited, created, errors=errors, writer=writer)


async def _attach_terminal(
    loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes], created: float, tty: str
) -> AgentProcess:
    """The loop's ends of a terminal agent: a reader and a writer on the master (each on its
    own descriptor, since each transport closes the one it has)."""
    master = popen.stdout
    assert master is not None
    writing: IO[bytes] | None = None
    try:
        output = PipeReader(loop, master)
        writing = os.fdopen(os.dup(master.fileno()), "wb", buffering=0)
        writer = await _writer(loop, writing)
        exited = _watch_exit(popen, loop)
    except BaseException:
        if writing is not None:
            writing.close()
        _kill_and_reap(popen)
        raise
    return AgentProcess(popen, output, exited, created, writer=writer, tty=tty)


async def _writer(loop: asyncio.AbstractEventLoop, file: IO[bytes]) -> asyncio.StreamWriter:
    """A stream writer on the agent's stdin, as asyncio's own subprocesses make theirs."""
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, file)
    return asyncio.StreamWriter(transport, protocol, None, loop)


_spawn_thread: ThreadPoolExecutor | None = None
_spawn_thread_lock = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    global _spawn_thread  # noqa: PLW0603 - one spawning thread per process, made on first use
    with _spawn_thread_lock:
        if _spawn_thread is None:
            _spawn_thread = ThreadPoolExecutor(1, thread_name_prefix="aios-spawn")
        return _spawn_thread


# Signals a program is told by its terminal or its user (a hang-up, ^\\): a disposition of
# "ignore" survives exec, so a daemon started under nohup (or by a shell that ignores them for
# its background jobs) would start agents that ignore them too.
_INHERITED = ("SIGHUP", "SIGQUIT")


def _deaf(signum: int, frame: object) -> None:
    """Does nothing: this process stays deaf to the signal, and a program it starts does not
    inherit a handler (exec resets it to the default)."""


def heed_for_children() -> None:
    """Call once, on the main thread, before starting agents: the signals this process ignores
    get a handler that does nothing instead, so its agents get their default (a terminal run
    can be hung up) while the daemon stays as deaf as it was started."""
    for name in _INHERITED:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_IGN:
            signal.signal(signum, _deaf)


def _popen(
    argv: list[str], cwd: Path, env: dict[str, str], merge_stderr: bool, stdin: bool
) -> tuple[subprocess.Popen[bytes], float, str | None]:
    """Start it, and read its start time (from /proc on Linux) while still on the thread."""
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    return popen, create_time(popen.pid), None


def _popen_terminal(
    argv: list[str], cwd: Path, env: dict[str, str], size: tuple[int, int]
) -> tuple[subprocess.Popen[bytes], float, str | None]:
    """Start it on a new pseudo-terminal of ``size`` (cols, rows); the master is its ``stdout``."""
    import fcntl  # noqa: PLC0415 - POSIX only
    import struct  # noqa: PLC0415
    import termios  # noqa: PLC0415

    master, slave = os.openpty()  # neither is inherited (PEP 446) but as the child's 0, 1, 2
    try:
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        tty = os.ttyname(slave)
        popen = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
            # After setsid(), before exec: the terminal on fd 0 becomes the session's
            # controlling terminal (so job control, SIGWINCH and SIGINT from ^C work). One C
            # call with its arguments bound beforehand: no Python code, no import and no
            # allocation between fork and exec, so it is safe in a threaded process.
            preexec_fn=functools.partial(fcntl.ioctl, 0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the child has its own copies
    popen.stdout = os.fdopen(master, "rb", buffering=0)
    return popen, create_time(popen.pid), tty


def _watch_exit(
    popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop
) -> asyncio.Future[None]:
    """A future set the moment the leader has exited and been reaped (``popen.returncode`` set).

    Only the leader's exit: a grandchild that keeps the output pipe open must not hide it.
    """
    exited: asyncio.Future[None] = loop.create_future()

    def done() -> None:
        if not exited.done():
            exited.set_result(None)

    try:
        pidfd = os.pidfd_open(popen.pid) if hasattr(os, "pidfd_open") else None
    except OSError:  # a kernel before 5.3, or a sandbox that refuses it
        pidfd = None
    if pidfd is None:
        # Popen.wait reaps it and sets returncode; the thread only waits, its result is ignored.
        threading.Thread(
            target=lambda: (popen.wait(), loop.call_soon_threadsafe(done)),
            name=f"aios-wait-{popen.pid}",
            daemon=True,
        ).start()
        return exited

    def readable() -> None:
        try:
            pid, status = os.waitpid(popen.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            pid, status = popen.pid, 255 << 8
        if pid == 0:
            return  # not yet: a spurious wake-up
        popen.returncode = os.waitstatus_to_exitcode(status)
        loop.remove_reader(pidfd)
        os.close(pidfd)
        done()

    loop.add_reader(pidfd, readable)
    return exited


def _kill_if_started(spawning: Future[tuple[subprocess.Popen[bytes], float, str | None]]) -> None:
    if not spawning.cancelled() and spawning.exception() is None:
        _kill_and_reap(spawning.result()[0])


def _kill_and_reap(popen: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()
    for file in (popen.stdout, popen.stderr, popen.stdin):
        if file is not None:
            file.close()


def _spawn_failure(program: str, cwd: Path, exc: OSError) -> str:
    if exc.filename is not None and Path(os.fsdecode(exc.filename)) == cwd:
        return f"working directory {str(cwd)!r}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError):
        return "no such file" if os.sep in program else "executable not found on PATH"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def _enlarge_pipe(fd: int, size: int) -> None:
    """Ask for a bigger output pipe (Linux ``F_SETPIPE_SZ``); keep the default when refused."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl  # noqa: PLC0415 - POSIX only, and only Linux has F_SETPIPE_SZ

    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        with contextlib.suppress(OSError):  # over pipe-max-size, or the user's pipe quota
            fcntl.fcntl(fd, setpipe, size)
