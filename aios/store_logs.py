"""Each run's output files, as the store's worker thread writes and reads them.

Each run has a readable log, and for agents with a structured output the raw lines it wrote
on stdout (its "events", JSON lines) and on stderr (its "stderr", as written), each capped at
``cap_bytes`` with a marker saying so; a run
in a git directory also has the diff of what it changed (written whole when it ends, capped by
its writer). Files are 0600 in a 0700 directory, and named after run ids, which may arrive from a
URL: an id that is not a plain name is an ``UnknownRun``, never a path.

On a full disk, output that does not fit is dropped and counted (``Wrote.lost``); the first write
of that file that fits again says how much was lost (the lost-output marker). Any other OSError
is raised, for the store to translate (``aios.store_errors``).

Not thread-safe: only the store's one worker thread touches it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aios import disk, private
from aios.store_errors import UnknownRun

MiB = 1024 * 1024
Stream = Literal["log", "events", "stderr", "diff", "screen"]
SUFFIXES: dict[Stream, str] = {
    "log": ".log",
    "events": ".events.jsonl",
    "stderr": ".stderr",
    "diff": ".diff",
    "screen": ".screen.json",  # a terminal run's final screen (aios.agents.terminals)
}
_EVENTS_MARKER = b'\n{"type":"aios.truncated","message":"later events were not kept"}\n'
_SAFE_ID = re.compile(r"[0-9A-Za-z_-]+")


def check_id(run_id: str) -> None:
    """Raise UnknownRun for an id that could not name a file of ours."""
    if not _SAFE_ID.fullmatch(run_id):
        raise UnknownRun(run_id)


@dataclass(frozen=True)
class Wrote:
    """What a log write did: the bytes it could not keep for lack of space, and where."""

    lost: int = 0
    path: Path | None = None


@dataclass
class _Log:
    file: io.FileIO
    size: int


class RunLogs:
    def __init__(self, logs_dir: Path, cap_bytes: int) -> None:
        self.logs_dir = logs_dir
        self.cap_bytes = cap_bytes
        self._marker = (
            f"\n[aios: output truncated at {cap_bytes / MiB:g} MiB; later output was not kept]\n"
        ).encode()
        self._logs: dict[tuple[str, Stream], _Log] = {}
        # Output dropped for lack of space and not yet marked in its log.
        self._dropped: dict[tuple[str, Stream], int] = {}

    def make_private(self) -> None:
        """Output is the user's alone, also the files an older version left readable."""
        private.ensure_private_dir(self.logs_dir)
        private.tighten_all(p for p in self.logs_dir.iterdir() if p.is_file())  # output, events

    def path(self, run_id: str, stream: Stream = "log") -> Path:
        check_id(run_id)
        return self.logs_dir / f"{run_id}{SUFFIXES[stream]}"

    def append(self, run_id: str, data: bytes, stream: Stream) -> Wrote:
        """Append; on a full disk, what does not fit is dropped and counted (and said in the
        log, by the first write that fits again)."""
        key = (run_id, stream)
        path = self.path(run_id, stream)
        kept_at: int | None = None
        log: _Log | None = None
        try:
            log = self._logs.get(key)
            if log is None:
                # Unbuffered: a write cut short by a full disk must say how much it wrote.
                fd = private.open_fd(path, os.O_WRONLY | os.O_APPEND)
                file = io.FileIO(fd, "ab")
                log = self._logs[key] = _Log(file, file.seek(0, os.SEEK_END))
            if (dropped := self._dropped.get(key)) is not None:
                _write_all(log, _lost_marker(dropped, path, stream))
                del self._dropped[key]
            # Past the cap means the marker is there already (this run or an earlier daemon).
            if log.size > self.cap_bytes or not data:
                return Wrote()
            room = self.cap_bytes - log.size
            kept = data if len(data) <= room else data[:room]  # no copy of a chunk that fits
            kept_at = log.size
            _write_all(log, kept)
            if len(kept) < len(data):
                _write_all(log, _EVENTS_MARKER if stream == "events" else self._marker)
        except OSError as exc:
            if not disk.is_full(exc):
                raise
            written = 0 if kept_at is None or log is None else log.size - kept_at
            lost = len(data) - min(written, len(data))
            self._dropped[key] = self._dropped.get(key, 0) + lost
            return Wrote(lost, path)
        return Wrote()

    def read(self, run_id: str, offset: int, limit: int | None, stream: Stream) -> bytes:
        try:
            with self.path(run_id, stream).open("rb") as file:
                file.seek(offset)
                return file.read(-1 if limit is None else limit)
        except FileNotFoundError:
            return b""

    def size(self, run_id: str, stream: Stream) -> int:
        if (log := self._logs.get((run_id, stream))) is not None:
            return log.size
        try:
            return self.path(run_id, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def write_file(self, run_id: str, data: bytes, stream: Stream) -> None:
        if (log := self._logs.pop((run_id, stream), None)) is not None:
            log.file.close()  # an append handle would write past the new end
        path = self.path(run_id, stream)
        partial_path = path.with_name(path.name + ".partial")
        try:
            private.write_bytes(partial_path, data)  # 0600 from the start, like every log
        except OSError:
            partial_path.unlink(missing_ok=True)  # half a file takes the space others need
            raise
        partial_path.replace(path)

    def close(self, run_id: str) -> None:
        for stream in SUFFIXES:
            log = self._logs.pop((run_id, stream), None)
            if log is not None:
                log.file.close()

    def forget(self, run_id: str) -> None:
        """Close and delete the run's files (and forget what it lost)."""
        self.close(run_id)
        for stream in SUFFIXES:
            self._dropped.pop((run_id, stream), None)
            self.path(run_id, stream).unlink(missing_ok=True)

    def close_all(self) -> None:
        for log in self._logs.values():
            with contextlib.suppress(OSError):  # nothing is buffered: a full disk cannot matter
                log.file.close()
        self._logs.clear()


def _write_all(log: _Log, data: bytes) -> None:
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
