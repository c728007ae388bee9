"""The loop's default executor (threads that end when idle, bounded, shut down cleanly), and
giving freed memory back."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest

from aios.workers import Workers
from tests.helpers import wait_until


def test_work_is_done_results_and_errors_come_back() -> None:
    workers = Workers(2)
    try:
        assert workers.submit(sum, [1, 2, 3]).result(5) == 6
        with pytest.raises(ZeroDivisionError):
            workers.submit(divmod, 1, 0).result(5)
        assert list(workers.map(abs, [-1, -2])) == [1, 2]
    finally:
        workers.shutdown()


def test_a_burst_is_bounded_and_its_threads_leave_when_idle() -> None:
    workers = Workers(3, idle=0.2)
    gate = threading.Event()
    try:
        futures = [workers.submit(gate.wait, 10) for _ in range(8)]
        wait_until(lambda: workers.threads == 3, what="three threads for the burst")
        assert workers.threads == 3  # never more than the bound
        gate.set()
        assert all(f.result(10) for f in futures)
        wait_until(lambda: workers.threads == 0, what="the idle threads to leave")
        assert workers.submit(lambda: 7).result(5) == 7  # and new ones come when needed
    finally:
        workers.shutdown()
    assert workers.threads == 0


def test_shutdown_waits_for_running_work_and_refuses_more() -> None:
    workers = Workers(2)
    gate = threading.Event()
    running = workers.submit(gate.wait, 10)
    waiting = workers.submit(gate.wait, 10)
    queued = workers.submit(gate.wait, 10)
    wait_until(lambda: running.running() and waiting.running(), what="both threads busy")
    stopper = threading.Thread(target=workers.shutdown, kwargs={"cancel_futures": True})
    stopper.start()
    wait_until(queued.cancelled, what="queued work cancelled")
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive() and running.result() and waiting.result()
    assert workers.threads == 0
    with pytest.raises(RuntimeError):
        workers.submit(print)


async def test_it_serves_asyncio_to_thread() -> None:
    workers = Workers(2)
    asyncio.get_running_loop().set_default_executor(workers)
    assert await asyncio.to_thread(lambda: threading.current_thread().name) == "aios-worker-0"


async def test_trimming_the_c_heap_is_harmless_and_debounced() -> None:
    from aios import memory

    memory.trim()  # glibc here; a no-op where the C library has no malloc_trim
    memory.trim_later(0.01)
    memory.trim_later(0.01)  # the first is cancelled: one trim for a burst
    await asyncio.sleep(0.05)


def test_the_first_trim_starts_no_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first trim is when glibc's ``malloc_trim`` is looked for, on the event loop: that
    must not start a program (``ctypes.util.find_library`` runs ``ldconfig -p``, or gcc where
    there is none) for every request to wait behind."""
    import platform
    import subprocess

    from aios import memory

    started: list[object] = []
    real = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        started.append(args[0] if args else kwargs.get("args"))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    memory._trimmer.cache_clear()
    try:
        memory.trim()
        assert started == []
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            assert memory._trimmer() is not None  # found all the same
    finally:
        memory._trimmer.cache_clear()
