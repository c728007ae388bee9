"""One agent's process group: spawn it, read its output, sample it, stop it.

Every agent starts in a session of its own (``start_new_session=True``), so it leads a fresh
process group whose id is its pid. Signals go to the whole group with ``os.killpg``: the shells,
test runners and language servers an agent starts share its fate, whatever the agent itself does
with SIGTERM. Stopping is SIGTERM to the group, a grace period for *every* member to leave (not
only the leader), then SIGKILL to whatever is left.

Limits, and what covers them:

* A descendant that calls ``setsid()``/``setpgid()`` leaves the group. ``stop()`` also signals such
  escapees: the ones found in the tree under the leader or any member of its group when ``stop()``
  begins (psutil walks it), and the ones seen there earlier, while sampling, that still run (psutil
  checks a remembered process's start time, so a reused pid is not one of them). One whose parent
  had already exited before we ever saw it was reparented to init and is out of reach.
* When the daemon itself dies without cleaning up, ``aios.agents.watchdog`` stops the groups.
* Pids are reused. A process group id is not reused while the group has a member (POSIX), and
  this class stops signalling a group once it has seen it empty. Records from a previous daemon
  carry the leader's ``create_time`` so ``kill_stale_group`` never kills a stranger.
* PID 1 in a container may never reap orphans, which then linger as zombies and keep their group
  "existing" for ``killpg(pgid, 0)``: liveness checks here ignore zombies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING

from aios.lazy import lazy_import

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_import("psutil")  # loaded by the first run, not by an idle daemon

__all__ = [
    "REAP_TIMEOUT",
    "AgentInputError",
    "AgentProcess",
    "SpawnError",
    "kill_stale_group",
    "spawn",
]

log = logging.getLogger(__name__)

# Output is read in chunks of up to READ_LIMIT (the reader buffers up to twice that before it
# stops reading the pipe), from a pipe enlarged to PIPE_SIZE where the OS allows: each chunk
# costs a hop to the store's writer thread, so at 64 KiB (the default pipe) that overhead, not
# the copying, bounded how fast a flooding agent could be captured (docs/performance.md).
READ_LIMIT = 1024 * 1024
PIPE_SIZE = 1024 * 1024
WRITE_TIMEOUT = 5.0  # seconds a write to an agent's stdin may wait for the agent to read
_POLL = 0.02  # seconds between checks while the group empties
REAP_TIMEOUT = 5.0  # seconds the leader has to be reaped after SIGKILL
KILL_SETTLE = 2.0  # seconds for processes sent SIGKILL to be gone
_ESCAPEES_KEPT = 64  # remembered escapees before the dead ones are forgotten
_CREATE_TIME_SLACK = 1.0  # seconds; create times from psutil are rounded to clock ticks


class SpawnError(Exception):
    """The agent could not be started at all (missing or non-executable program, bad cwd)."""

    def __init__(self, program: str, reason: str) -> None:
        self.program = program
        self.reason = reason
        super().__init__(f"cannot start {program!r}: {reason}")


class AgentInputError(Exception):
    """A line could not be written to the agent's stdin (closed, or not being read)."""


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    merge_stderr: bool = True,
    stdin: bool = False,
) -> AgentProcess:
    """Start ``argv`` (never through a shell) as the leader of a new session and process group.

    stdin is /dev/null (with ``stdin=True``, a pipe for ``write_line``); stdout and stderr are
    merged into one pipe, read with ``read()``, or with ``merge_stderr=False`` kept apart
    (``read()`` and ``read_stderr()``: a structured stream on stdout must not be interleaved
    with diagnostics). The agent sees exactly ``env`` and inherits no other file descriptor.

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
    spawning = _spawner().submit(_popen, list(argv), cwd, dict(env), merge_stderr, stdin)
    try:
        popen, create_time = await asyncio.wrap_future(spawning, loop=loop)
    except asyncio.CancelledError:
        # Cancelled while the thread forks: whatever it starts must not run unsupervised.
        spawning.add_done_callback(_kill_if_started)
        raise
    except OSError as exc:
        raise SpawnError(program, _spawn_failure(program, cwd, exc)) from exc
    except ValueError as exc:  # an embedded NUL byte
        raise SpawnError(program, str(exc)) from exc
    assert popen.stdout is not None
    try:
        _enlarge_pipe(popen.stdout.fileno(), PIPE_SIZE)
        output, pipe = await _reader(loop, popen.stdout)
        errors, errors_pipe = await _reader(loop, popen.stderr) if popen.stderr else (None, None)
        writer = await _writer(loop, popen.stdin) if popen.stdin else None
        exited = _watch_exit(popen, loop)
    except BaseException:
        _kill_and_reap(popen)
        raise
    return AgentProcess(
        popen, output, pipe, exited, create_time,
        errors=errors, errors_pipe=errors_pipe, writer=writer,
    )  # fmt: skip


async def _reader(
    loop: asyncio.AbstractEventLoop, file: IO[bytes]
) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    stream = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
    pipe, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), file
    )
    if hasattr(pipe, "max_size"):
        # asyncio's pipe transport reads 256 KiB per wake-up (its class's max_size); one
        # read per pipeful, 1 MiB, is a quarter of the wake-ups for a flooding agent.
        pipe.max_size = READ_LIMIT
    return stream, pipe


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


def _popen(
    argv: list[str], cwd: Path, env: dict[str, str], merge_stderr: bool, stdin: bool
) -> tuple[subprocess.Popen[bytes], float]:
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
    return popen, _create_time(popen.pid)


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


def _kill_if_started(spawning: Future[tuple[subprocess.Popen[bytes], float]]) -> None:
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


class AgentProcess:
    """A running agent: the leader of its own process group (``pgid == pid``)."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        output: asyncio.StreamReader,
        pipe: asyncio.ReadTransport,
        exited: asyncio.Future[None],
        create_time: float,
        *,
        errors: asyncio.StreamReader | None = None,
        errors_pipe: asyncio.ReadTransport | None = None,
        writer: asyncio.StreamWriter | None = None,
    ) -> None:
        self._popen = popen
        self._output = output
        self._pipe = pipe
        self._errors = errors
        self._errors_pipe = errors_pipe
        self._input = writer
        # The output pipes, by inode: what still holds one after the group is gone is ours.
        self.pipe_inodes = {i for i in (_pipe_inode(pipe), _pipe_inode(errors_pipe)) if i}
        self._exited = exited
        self.pid: int = popen.pid
        self.pgid: int = popen.pid
        self.create_time = create_time
        self._group_gone = False  # seen empty once: never signal that pgid again
        self._sampled: dict[int, psutil.Process] = {}
        self._escapees: dict[int, psutil.Process] = {}  # seen outside the group, in the tree
        self._sample_lock = threading.Lock()
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<AgentProcess pid={self.pid} returncode={self.returncode}>"

    @property
    def returncode(self) -> int | None:
        """The leader's exit code once it has exited; ``-N`` when signal N killed it."""
        return self._popen.returncode

    async def read(self, n: int = READ_LIMIT) -> bytes:
        """Up to ``n`` bytes of stdout (merged with stderr unless spawned apart); ``b""`` once
        every writer has closed it."""
        return await self._output.read(n)

    async def write_line(self, line: str, timeout: float = WRITE_TIMEOUT) -> None:  # noqa: ASYNC109
        """Write one line to the agent's stdin (spawned with ``stdin=True``).

        asyncio buffers the write, so the loop never blocks; waiting for the buffer to drain is
        bounded, so an agent that stops reading its input costs an error, not a stuck caller.
        Lines never interleave. Raises ``AgentInputError`` when the input is closed or full.
        """
        writer = self._input
        if writer is None or writer.is_closing() or self.returncode is not None:
            raise AgentInputError("the agent's input is closed")
        async with self._write_lock:
            try:
                writer.write(line.encode() + b"\n")
                await asyncio.wait_for(writer.drain(), timeout)
            except TimeoutError as exc:
                raise AgentInputError(
                    f"the agent did not read its input for {timeout:g} s"
                ) from exc
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise AgentInputError("the agent's input is closed") from exc

    def close_input(self) -> None:
        """Close the agent's stdin: a two-way session takes that as the end of the conversation."""
        writer = self._input
        if writer is not None and not writer.is_closing():
            writer.close()

    async def read_stderr(self, n: int = READ_LIMIT) -> bytes:
        """Up to ``n`` bytes of stderr when it was kept apart; ``b""`` at its end (or if not)."""
        if self._errors is None:
            return b""
        return await self._errors.read(n)

    async def wait(self) -> int:
        """Wait for the leader to exit (not for its output pipe to close); return its exit code."""
        await asyncio.shield(self._exited)
        returncode = self._popen.returncode
        assert returncode is not None
        return returncode

    async def stop(self, timeout: float) -> int:  # noqa: ASYNC109  (a grace period, not a deadline)
        """SIGTERM the group, give every member ``timeout`` seconds, then SIGKILL what is left.

        Returns the leader's exit code. Safe to call again, concurrently, or after the agent ended.
        """
        if self._group_gone and self.returncode is not None:
            return self.returncode
        if self.returncode is not None and self._left_nothing():
            return self.returncode
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        escaped = await asyncio.to_thread(self._find_escapees)
        self._signal_group(signal.SIGTERM)
        _signal_each(escaped, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exited), deadline - loop.time())
        # Nothing signals when a grandchild exits: poll.
        left = self._anything_left
        while loop.time() < deadline and await asyncio.to_thread(left, escaped):  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        self._signal_group(signal.SIGKILL)
        _signal_each(escaped, signal.SIGKILL)
        try:
            returncode = await asyncio.wait_for(self.wait(), REAP_TIMEOUT)
        except TimeoutError as exc:
            raise TimeoutError(f"agent {self.pid} survived SIGKILL for {REAP_TIMEOUT} s") from exc
        # SIGKILL is final but not instant: return once the members are gone too.
        deadline = loop.time() + REAP_TIMEOUT
        while await asyncio.to_thread(self._anything_left, escaped):
            if loop.time() > deadline:
                log.warning("process group %d survived SIGKILL for %s s", self.pgid, REAP_TIMEOUT)
                break
            await asyncio.sleep(_POLL)
        return returncode

    async def stop_pipe_holders(self, timeout: float) -> int:  # noqa: ASYNC109 (a grace period)
        """SIGTERM, then SIGKILL after ``timeout``, every other process holding our output pipe.

        After the group is gone, a process that still holds the pipe was started by the agent
        (nothing else can have it: it is inherited) and escaped both the group and the tree, by
        a double fork. Linux only (``/proc``); elsewhere nothing is found. Returns how many.
        """
        holders = await asyncio.to_thread(pipe_holders, self.pipe_inodes)
        if not holders:
            return 0
        log.warning("agent %d left %d processes holding its output", self.pid, len(holders))
        _signal_each(holders, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and any(map(_alive, holders)):  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        _signal_each(holders, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: the run ends when they are gone, not when they
        # were told (a moment under load; bounded, since nothing can outlive SIGKILL for long).
        deadline = loop.time() + KILL_SETTLE
        while loop.time() < deadline and any(map(_alive, holders)):  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        return len(holders)

    def kill_group(self) -> None:
        """SIGKILL the whole group now, without waiting."""
        self._signal_group(signal.SIGKILL)

    def close(self) -> None:
        """Release the output pipe (killing the group first if the leader still runs). Idempotent.

        Needed only when output is not read to end-of-file, which closes it by itself.
        """
        if self.returncode is None:
            self.kill_group()
        self._pipe.close()
        if self._errors_pipe is not None:
            self._errors_pipe.close()
        if self._input is not None and not self._input.is_closing():
            self._input.close()

    def sample(self) -> tuple[float, int] | None:
        """(CPU percent, RSS bytes) summed over the leader and its descendants; None once it ended.

        CPU is in percent of one core (it can exceed 100) measured since the previous call, so the
        first call reports 0.0 for each process. Blocks for a few milliseconds: call it in a thread.
        """
        if self.returncode is not None:
            return None
        with self._sample_lock:
            try:
                leader = self._sampled.get(self.pid) or psutil.Process(self.pid)
                if leader.status() == psutil.STATUS_ZOMBIE or not _same_start(
                    leader.create_time(), self.create_time
                ):
                    return None
                members = [leader, *leader.children(recursive=True)]
            except psutil.Error:
                return None
            cpu, rss = 0.0, 0
            sampled: dict[int, psutil.Process] = {}
            for found in members:
                cached = self._sampled.get(found.pid)
                proc = cached if cached is not None and cached == found else found
                try:
                    with proc.oneshot():
                        cpu += proc.cpu_percent(interval=None)
                        rss += proc.memory_info().rss
                except psutil.Error:
                    continue
                sampled[proc.pid] = proc
            self._sampled = sampled
            self._remember_escapees(members)
            return cpu, rss

    def _left_nothing(self) -> bool:
        """Whether the exited leader left nothing behind, decided without walking the process
        table: its group is empty (one ``killpg(pgid, 0)``) and no escapee seen while sampling
        is alive. Then ``stop`` has nothing to signal and no thread to start - the common end of
        a run, which the agent-exit → event latency waits for (``make bench``).

        With the leader gone and reaped, a descendant still in the tree hangs under a group
        member (so the group is not empty) or was reparented away (out of reach of the walk too).
        """
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            return False
        else:
            return False  # members remain (or zombies): the full escalation decides
        self._group_gone = True
        with self._sample_lock:
            return not any(_alive(proc) for proc in self._escapees.values())

    def _signal_group(self, sig: int) -> None:
        if self._group_gone:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            # Empty now, and the leader cannot come back: a later group with this id is a stranger.
            self._group_gone = True
        except PermissionError:
            log.warning("not allowed to signal process group %d", self.pgid)

    def _find_escapees(self) -> list[psutil.Process]:
        """Descendants that left the group (setsid, setpgid), found now or seen before, alive.

        The tree is walked from the leader and from every member of its group: once the leader
        has exited, an escapee whose parent is still a member is found through that parent.
        """
        roots: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            roots.append(psutil.Process(self.pid))
        if not self._group_gone:
            roots += _group_members(self.pgid)
        found: list[psutil.Process] = []
        for root in roots:
            with contextlib.suppress(psutil.Error):
                found += root.children(recursive=True)
        with self._sample_lock:
            self._remember_escapees(found)
            return [proc for proc in self._escapees.values() if _alive(proc)]

    def _remember_escapees(self, procs: Iterable[psutil.Process]) -> None:
        for proc in procs:
            if proc.pid not in self._escapees and _pgid(proc.pid) not in (self.pgid, None):
                self._escapees[proc.pid] = proc
        if len(self._escapees) > _ESCAPEES_KEPT:  # an agent that daemonizes a lot: keep the live
            self._escapees = {pid: p for pid, p in self._escapees.items() if _alive(p)}

    def _anything_left(self, escaped: Iterable[psutil.Process]) -> bool:
        if self.returncode is None:
            return True
        return _group_has_live_member(self.pgid) or any(_alive(proc) for proc in escaped)


def _enlarge_pipe(fd: int, size: int) -> None:
    """Ask for a bigger output pipe (Linux ``F_SETPIPE_SZ``); keep the default when refused."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl  # noqa: PLC0415 - POSIX only, and only Linux has F_SETPIPE_SZ

    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        with contextlib.suppress(OSError):  # over pipe-max-size, or the user's pipe quota
            fcntl.fcntl(fd, setpipe, size)


def _pipe_inode(pipe: asyncio.ReadTransport | None) -> int | None:
    file = pipe.get_extra_info("pipe") if pipe is not None else None
    try:
        return os.fstat(file.fileno()).st_ino if file is not None else None
    except (OSError, ValueError):  # already at its end and closed: nobody can hold it now
        return None


def pipe_holders(inodes: Iterable[int]) -> list[psutil.Process]:
    """Processes other than this one with one of the pipes ``inodes`` open (Linux ``/proc``)."""
    targets = {f"pipe:[{inode}]" for inode in inodes}
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
    they are killed.
    """
    if pgid <= 1 or pgid == os.getpgrp() or not _is_stale_leader(pgid, create_time):
        return False
    if not _group_has_live_member(pgid):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _is_stale_leader(pgid: int, create_time: float | None) -> bool:
    """Whether pid ``pgid`` is gone, or still the group leader that started at ``create_time``."""
    try:
        leader = psutil.Process(pgid)
        if _pgid(pgid) not in (pgid, None):  # None: a zombie, on some systems
            return False  # a process with that pid that leads no group of that id
        return create_time is None or _same_start(leader.create_time(), create_time)
    except psutil.NoSuchProcess:
        return True  # the leader is gone; its group may still have members
    except psutil.Error:
        return False


def _group_has_live_member(pgid: int) -> bool:
    """Whether any process in the group is more than a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(_group_members(pgid))


def _group_members(pgid: int) -> list[psutil.Process]:
    return [proc for proc in psutil.process_iter() if _pgid(proc.pid) == pgid and _alive(proc)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_each(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)  # psutil checks the pid still names the same process


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _same_start(a: float, b: float) -> bool:
    return abs(a - b) <= _CREATE_TIME_SLACK


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return time.time()  # already gone and reaped: now is within moments of its start
