"""The event loop's end of an agent's output: its pipe (or its terminal's master), read straight
from the descriptor.

asyncio's pipe transport hands each read to a ``StreamReader``, which copies it into its buffer
and out again: two more copies of every byte, on the loop and under the GIL. For a flooding
agent that was a third of the loop's time, which a request (``/health`` in ``make bench``) waited
behind. Here ``read(n)`` is one ``os.read`` when the pipe has data, and waits for it to become
readable only when it is empty. The pipe is read only when AIOS asks, so a flooding agent that
writes faster than its output is kept still blocks on its full pipe, as it did before.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO

__all__ = ["PipeReader"]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class PipeReader:
    """Reads one descriptor on the running loop; it owns ``file``, and closes it at the end of
    the stream, on a read error, or on ``close()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, file: IO[bytes]) -> None:
        self._loop = loop
        self._file: IO[bytes] | None = file
        self.fd = file.fileno()
        # What a process holding it is found by once the agent's group is gone (/proc).
        self.inode = os.fstat(self.fd).st_ino
        os.set_blocking(self.fd, False)
        self._waiter: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._file is None

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, as soon as there are any; ``b""`` at the end of the stream (every
        writer closed it) or once closed. An error (a terminal's EIO once nothing holds its
        slave end) is raised, the descriptor closed first."""
        while self._file is not None:
            try:
                data = os.read(self.fd, n)
            except BlockingIOError:
                await self._readable()
                continue
            except OSError:
                self.close()
                raise
            if not data:
                self.close()
            return data
        return b""

    async def _readable(self) -> None:
        assert self._waiter is None, "one reader at a time"
        waiter = self._waiter = self._loop.create_future()
        self._loop.add_reader(self.fd, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if self._file is not None:  # close() has removed it already
                self._loop.remove_reader(self.fd)

    def close(self) -> None:
        """Stop reading and close the descriptor; a read waiting meanwhile returns ``b""``.
        Idempotent."""
        file, self._file = self._file, None
        if file is None:
            return
        waiter = self._waiter
        if waiter is not None:
            self._loop.remove_reader(self.fd)
            _wake(waiter)
        file.close()
