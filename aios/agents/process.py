"""One agent's process group, once started: read its output, write its input, sample it, stop it.

Every agent starts in a session of its own (``start_new_session=True``, see
``aios.agents.spawning``), so it leads a fresh process group whose id is its pid. Signals go to
the whole group with ``os.killpg``: the shells, test runners and language servers an agent starts
share its fate, whatever the agent itself does with SIGTERM. Stopping is SIGTERM to the group, a
grace period for *every* member to leave (not only the leader), then SIGKILL to whatever is left.

The rooms::

    spawning         starting an agent: the spawning thread, Popen, pipes, noticing its exit
    process          this handle: AgentProcess (read, write_line, sample, stop), its errors
    pipes            the loop's end of its output: one os.read per chunk, no buffer between
    process_groups   groups and processes: alive or not, signalling, pipe holders, stale groups

Limits, and what covers them:

* A descendant that calls ``setsid()``/``setpgid()`` leaves the group. ``stop()`` also signals such
  escapees: the ones found in the tree under the leader or any member of its group when ``stop()``
  begins (psutil walks it), and the ones seen there earlier, while sampling, that still run (psutil
  checks a remembered process's start time, so a reused pid is not one of them). One whose parent
  had already exited before we ever saw it was reparented to init and is out of reach; one that
  still holds the output pipe after the group is gone is found by ``stop_pipe_holders``.
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
import errno
import logging
import os
import signal
import struct
import subprocess
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aios.agents.process_groups import (
    alive,
    group_has_live_member,
    group_members,
    pgid_of,
    pipe_holders,
    same_start,
    signal_each,
)
from aios.lazy import lazy_import

if TYPE_CHECKING:
    import psutil

    from aios.agents.pipes import PipeReader
else:
    psutil = lazy_import("psutil")  # loaded by the first run, not by an idle daemon

__all__ = ["READ_LIMIT", "REAP_TIMEOUT", "AgentInputError", "AgentProcess"]

log = logging.getLogger(__name__)

# Output is read in chunks of up to READ_LIMIT, one os.read each (aios.agents.pipes; nothing is
# read ahead, so a flooding agent waits on its full pipe), from a pipe enlarged to PIPE_SIZE
# (aios.agents.spawning) where the OS allows: each chunk costs a hop to the store's writer
# thread, so at 64 KiB (the default pipe) that overhead, not the copying, bounded how fast a
# flooding agent could be captured (docs/performance.md).
READ_LIMIT = 1024 * 1024
TYPE_AHEAD = 64 * 1024  # bytes typed into a terminal that its program has not read yet
WRITE_TIMEOUT = 5.0  # seconds a write to an agent's stdin may wait for the agent to read
_POLL = 0.02  # seconds between checks while the group empties
REAP_TIMEOUT = 5.0  # seconds the leader has to be reaped after SIGKILL
KILL_SETTLE = 2.0  # seconds for processes sent SIGKILL to be gone
_ESCAPEES_KEPT = 64  # remembered escapees before the dead ones are forgotten


class AgentInputError(Exception):
    """A line could not be written to the agent's stdin (closed, or not being read)."""


class AgentProcess:
    """A running agent: the leader of its own process group (``pgid == pid``)."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        output: PipeReader,
        exited: asyncio.Future[None],
        create_time: float,
        *,
        errors: PipeReader | None = None,
        writer: asyncio.StreamWriter | None = None,
        tty: str | None = None,
    ) -> None:
        self._popen = popen
        self._output = output
        self._errors = errors
        self._input = writer
        # The output pipes, by inode: what still holds one after the group is gone is ours.
        self.pipe_inodes = {reader.inode for reader in (output, errors) if reader is not None}
        # A terminal agent's: the slave's path (what escapees hold), and the master's descriptor.
        self.tty = tty
        self._master = output.fd if tty is not None else None
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
        every writer has closed it (for a terminal: once nothing holds its slave end, which
        Linux reports as EIO)."""
        try:
            return await self._output.read(n)
        except OSError as exc:
            if self.tty is not None and exc.errno == errno.EIO:
                return b""
            raise

    def type(self, data: bytes) -> bool:
        """Type ``data`` into a terminal agent, without waiting (asyncio buffers it, the loop
        never blocks). False when it is not taken: no terminal, its input closed, or more than
        ``TYPE_AHEAD`` bytes already waiting for the program to read them."""
        writer = self._input
        if self.tty is None or writer is None or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() + len(data) > TYPE_AHEAD:
            return False
        writer.write(data)
        return True

    def resize(self, cols: int, rows: int) -> None:
        """Set a terminal agent's size; the kernel sends SIGWINCH to its foreground group."""
        if self._master is None or self.returncode is not None or self._output.closed:
            return  # closed, its number may be another file's by now
        import fcntl  # noqa: PLC0415 - POSIX only (a terminal exists only there)
        import termios  # noqa: PLC0415

        with contextlib.suppress(OSError):  # closed under us: the run is ending
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def foreground_group(self) -> int | None:
        """The process group in the foreground of a terminal agent's terminal (who reads it)."""
        if self._master is None or self.returncode is not None or self._output.closed:
            return None
        try:
            return os.tcgetpgrp(self._master)
        except OSError:
            return None

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
        if self._master is not None:
            # A terminal is hung up first, as closing a terminal window does: an interactive
            # shell ignores SIGTERM, but ends (and hangs up its jobs) on SIGHUP.
            self._hang_up()
        self._signal_group(signal.SIGTERM)
        signal_each(escaped, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exited), deadline - loop.time())
        # Nothing signals when a grandchild exits: poll.
        left = self._anything_left
        while loop.time() < deadline and await asyncio.to_thread(left, escaped):  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        self._signal_group(signal.SIGKILL)
        signal_each(escaped, signal.SIGKILL)
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
        ttys = () if self.tty is None else (self.tty,)
        holders = await asyncio.to_thread(pipe_holders, self.pipe_inodes, ttys)
        if not holders:
            return 0
        log.warning("agent %d left %d processes holding its output", self.pid, len(holders))
        signal_each(holders, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and any(map(alive, holders)):  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        signal_each(holders, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: the run ends when they are gone, not when they
        # were told (a moment under load; bounded, since nothing can outlive SIGKILL for long).
        deadline = loop.time() + KILL_SETTLE
        while loop.time() < deadline and any(map(alive, holders)):  # noqa: ASYNC110
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
        self._output.close()
        if self._errors is not None:
            self._errors.close()
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
                if leader.status() == psutil.STATUS_ZOMBIE or not same_start(
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
            return not any(alive(proc) for proc in self._escapees.values())

    def _hang_up(self) -> None:
        foreground = self.foreground_group()
        self._signal_group(signal.SIGHUP)
        if foreground is not None and foreground != self.pgid:  # a job the shell runs
            with contextlib.suppress(OSError):
                os.killpg(foreground, signal.SIGHUP)

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
            roots += group_members(self.pgid)
        found: list[psutil.Process] = []
        for root in roots:
            with contextlib.suppress(psutil.Error):
                found += root.children(recursive=True)
        with self._sample_lock:
            self._remember_escapees(found)
            return [proc for proc in self._escapees.values() if alive(proc)]

    def _remember_escapees(self, procs: Iterable[psutil.Process]) -> None:
        for proc in procs:
            if proc.pid not in self._escapees and pgid_of(proc.pid) not in (self.pgid, None):
                self._escapees[proc.pid] = proc
        if len(self._escapees) > _ESCAPEES_KEPT:  # an agent that daemonizes a lot: keep the live
            self._escapees = {pid: p for pid, p in self._escapees.items() if alive(p)}

    def _anything_left(self, escaped: Iterable[psutil.Process]) -> bool:
        if self.returncode is None:
            return True
        return group_has_live_member(self.pgid) or any(alive(proc) for proc in escaped)
