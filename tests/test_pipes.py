"""The loop's end of an output pipe: what it reads, how it ends, and that it never holds on."""

from __future__ import annotations

import asyncio
import os

import pytest

from aios.agents.pipes import PipeReader


async def _pipe() -> tuple[PipeReader, int]:
    read, write = os.pipe()
    return PipeReader(asyncio.get_running_loop(), os.fdopen(read, "rb", buffering=0)), write


async def test_it_reads_what_is_there_at_once_and_waits_for_more() -> None:
    reader, write = await _pipe()
    os.write(write, b"one\n")
    assert await reader.read(1024) == b"one\n"
    later = asyncio.create_task(reader.read(1024))
    await asyncio.sleep(0.05)
    assert not later.done()  # an empty pipe: waiting, not spinning and not returning b""
    os.write(write, b"two\n")
    assert await asyncio.wait_for(later, 10) == b"two\n"
    os.close(write)
    assert await reader.read(1024) == b""  # every writer closed it
    assert reader.closed
    assert await reader.read(1024) == b""


async def test_a_read_takes_no_more_than_asked_and_leaves_the_rest() -> None:
    reader, write = await _pipe()
    os.write(write, b"x" * 100)
    assert await reader.read(30) == b"x" * 30
    assert await reader.read(1000) == b"x" * 70
    os.close(write)
    reader.close()


async def test_closing_wakes_a_waiting_read_and_closes_the_descriptor() -> None:
    reader, write = await _pipe()
    fd = reader.fd
    waiting = asyncio.create_task(reader.read(1024))
    await asyncio.sleep(0.05)
    reader.close()
    assert await asyncio.wait_for(waiting, 10) == b""
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: no descriptor left behind
    reader.close()  # idempotent
    os.close(write)


async def test_a_cancelled_read_leaves_the_pipe_readable_again() -> None:
    reader, write = await _pipe()
    waiting = asyncio.create_task(reader.read(1024))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    os.write(write, b"after\n")
    assert await asyncio.wait_for(reader.read(1024), 10) == b"after\n"
    os.close(write)
    reader.close()


async def test_a_terminal_whose_slave_is_gone_raises_and_is_closed() -> None:
    master, slave = os.openpty()
    reader = PipeReader(asyncio.get_running_loop(), os.fdopen(master, "rb", buffering=0))
    os.write(slave, b"bye\n")  # the terminal makes it "\r\n"
    os.close(slave)
    assert await reader.read(1024) == b"bye\r\n"
    with pytest.raises(OSError):  # Linux says EIO once nothing holds the slave end
        await reader.read(1024)
    assert reader.closed
