"""A run's files beside the database: its log, its raw events and its diff, capped, kept on a
full disk as far as they fit (what was dropped is said in the file once space returns)."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import re
from collections import deque
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from aios import disk, private
from aios.store.errors import StoreError, StoreUnavailable, Trouble, UnknownRun
from aios.store.worker import Worker

MiB = 1024 * 1024
# Log writes of one run that may be queued behind the one being done (see append_log).
WRITES_AHEAD = 2
# Each run has a readable log, and for agents with a structured output the raw lines it wrote
# on stdout (its "events", JSON lines), both capped at log_cap_mib; a run in a git directory
# also has the diff of what it changed (written whole when it ends, capped by its writer).
Stream = Literal["log", "events", "diff"]
SUFFIXES: dict[Stream, str] = {"log": ".log", "events": ".events.jsonl", "diff": ".diff"}
_EVENTS_MARKER = b'\n{"type":"aios.truncated","message":"later events were not kept"}\n'
# Log files are named after run ids, which may arrive from a URL: never let one be a path.
SAFE_ID = re.compile(r"[0-9A-Za-z_-]+")


@dataclass
class LogFile:
    file: io.FileIO
    size: int


@dataclass(frozen=True)
class Wrote:
    """What a log write did: the bytes it could not keep for lack of space, and where."""

    lost: int = 0
    path: Path | None = None


class LogFiles(Worker):
    """The part of :class:`aios.store.Store` that writes and reads a run's files."""

    log_cap_bytes: int
    _marker: bytes
    _logs: dict[tuple[str, Stream], LogFile]
    _writes: dict[str, deque[asyncio.Future[Wrote]]]
    _dropped: dict[tuple[str, Stream], int]
    _lost: dict[str, tuple[int, Path]]

    async def append_log(self, run_id: str, data: bytes, stream: Stream = "log") -> None:
        """Append to one of the run's logs. Returns once the write is queued, unless
        ``WRITES_AHEAD`` writes of this run are still waiting, then once the oldest is done:
        reading the next chunk overlaps writing this one, while a flooding agent still waits on
        its pipe (it is not read) rather than our memory growing. A write that failed is raised
        by the next ``append_log`` or ``close_log`` of the run."""
        if self._closed:
            raise StoreError("the store is closed")
        if not SAFE_ID.fullmatch(run_id):
            raise UnknownRun(run_id)  # here, not later: a path must never be queued
        writes = self._writes.setdefault(run_id, deque())
        loop = asyncio.get_running_loop()
        job = partial(self._append_log, run_id, data, stream)
        writes.append(loop.run_in_executor(self._executor, job))
        while len(writes) > WRITES_AHEAD or (writes and writes[0].done()):
            await self._settle(run_id, writes.popleft())

    async def settle_log(self, run_id: str) -> None:
        """Wait for the run's queued log writes (the files stay open)."""
        writes = self._writes.get(run_id)
        while writes:
            await self._settle(run_id, writes.popleft())

    def lost_output(self, run_id: str) -> str | None:
        """What the run's settled writes could not keep for lack of space, in words (once)."""
        lost = self._lost.pop(run_id, None)
        if lost is None:
            return None
        size, path = lost
        return f"{size} bytes of output were not kept: {disk.full_message(path)}"

    async def read_log(
        self, run_id: str, offset: int = 0, limit: int | None = None, stream: Stream = "log"
    ) -> bytes:
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        return await self._call(partial(self._read_log, run_id, offset, limit, stream))

    async def log_size(self, run_id: str, stream: Stream = "log") -> int:
        return await self._call(partial(self._log_size, run_id, stream))

    async def write_file(self, run_id: str, data: bytes, stream: Stream) -> None:
        """Replace the whole of one of a run's files (its diff), atomically."""
        await self._call(partial(self._write_file, run_id, data, stream))

    async def close_log(self, run_id: str) -> None:
        writes = self._writes.pop(run_id, deque())
        try:
            while writes:
                await self._settle(run_id, writes.popleft())
        finally:
            await self._call(partial(self._close_log, run_id))

    async def _settle(self, run_id: str, write: asyncio.Future[Wrote]) -> None:
        try:
            wrote = await write
        except OSError as exc:
            raise self._translate(exc) from exc
        if wrote.lost and wrote.path is not None:
            before, _ = self._lost.get(run_id, (0, wrote.path))
            self._lost[run_id] = (before + wrote.lost, wrote.path)
            if self.problem is None or self.problem.trouble is not Trouble.DISK_FULL:
                self._set_problem(StoreUnavailable(Trouble.DISK_FULL, wrote.path, "ENOSPC"))

    # -- on the worker thread -------------------------------------------------------------

    def _log_path(self, run_id: str, stream: Stream = "log") -> Path:
        if not SAFE_ID.fullmatch(run_id):
            raise UnknownRun(run_id)
        return self.logs_dir / f"{run_id}{SUFFIXES[stream]}"

    def _append_log(self, run_id: str, data: bytes, stream: Stream) -> Wrote:
        """Append; on a full disk, what does not fit is dropped and counted (and said in the
        log, by the first write that fits again)."""
        key = (run_id, stream)
        path = self._log_path(run_id, stream)
        kept_at: int | None = None
        log: LogFile | None = None
        try:
            log = self._logs.get(key)
            if log is None:
                # Unbuffered: a write cut short by a full disk must say how much it wrote.
                fd = private.open_fd(path, os.O_WRONLY | os.O_APPEND)
                file = io.FileIO(fd, "ab")
                log = self._logs[key] = LogFile(file, file.seek(0, os.SEEK_END))
            if (dropped := self._dropped.get(key)) is not None:
                _write_all(log, _lost_marker(dropped, path, stream))
                del self._dropped[key]
            # Past the cap means the marker is there already (this run or an earlier daemon).
            if log.size > self.log_cap_bytes or not data:
                return Wrote()
            room = self.log_cap_bytes - log.size
            kept = data if len(data) <= room else data[:room]  # no copy of a chunk that fits
            kept_at = log.size
            _write_all(log, kept)
            if len(kept) < len(data):
                _write_all(log, self._marker if stream == "log" else _EVENTS_MARKER)
        except OSError as exc:
            if not disk.is_full(exc):
                raise
            written = 0 if kept_at is None or log is None else log.size - kept_at
            lost = len(data) - min(written, len(data))
            self._dropped[key] = self._dropped.get(key, 0) + lost
            return Wrote(lost, path)
        return Wrote()

    def _read_log(self, run_id: str, offset: int, limit: int | None, stream: Stream) -> bytes:
        try:
            with self._log_path(run_id, stream).open("rb") as file:
                file.seek(offset)
                return file.read(-1 if limit is None else limit)
        except FileNotFoundError:
            return b""

    def _log_size(self, run_id: str, stream: Stream) -> int:
        if (log := self._logs.get((run_id, stream))) is not None:
            return log.size
        try:
            return self._log_path(run_id, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def _write_file(self, run_id: str, data: bytes, stream: Stream) -> None:
        if (log := self._logs.pop((run_id, stream), None)) is not None:
            log.file.close()  # an append handle would write past the new end
        path = self._log_path(run_id, stream)
        partial_path = path.with_name(path.name + ".partial")
        try:
            private.write_bytes(partial_path, data)  # 0600 from the start, like every log
        except OSError:
            partial_path.unlink(missing_ok=True)  # half a file takes the space others need
            raise
        partial_path.replace(path)

    def _close_log(self, run_id: str) -> None:
        for stream in SUFFIXES:
            log = self._logs.pop((run_id, stream), None)
            if log is not None:
                log.file.close()

    def _forget_log(self, run_id: str) -> None:
        self._close_log(run_id)
        for stream in SUFFIXES:
            self._dropped.pop((run_id, stream), None)
            self._log_path(run_id, stream).unlink(missing_ok=True)


def _write_all(log: LogFile, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a full disk takes part of a write); an
    OSError says why the rest was not, and the bytes written are counted in ``log.size``."""
    view = memoryview(data)
    done = 0
    try:
        while done < len(view):
            count = log.file.write(view[done:])
            if not count:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += count
    finally:
        log.size += done


def _lost_marker(size: int, path: Path, stream: Stream) -> bytes:
    words = f"{size} bytes of output were not kept here: {disk.full_message(path)}"
    words = words.replace(" is full", " was full")
    if stream == "events":
        return (json.dumps({"type": "aios.lost", "bytes": size, "message": words}) + "\n").encode()
    return f"\n[aios: {words}]\n".encode()
