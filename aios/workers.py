"""The event loop's default executor: a thread pool whose threads leave when they have been idle.

``asyncio.to_thread`` (file system work, psutil samples, PATH searches, login checks) runs on the
loop's default executor. The standard ``ThreadPoolExecutor`` starts a thread whenever none is idle,
up to its maximum, and keeps every thread it ever started: a burst of launches leaves a long-lived
tray daemon with all of them for ever. Here a thread that has had no work for ``idle`` seconds
ends, so after a burst the daemon goes back to the threads it had before it.

Work goes to the thread that became idle last (a stack, not a queue): with work arriving every
second or so (the history watch, resource samples), one thread takes it all and the others can
run out their idle time; a queue all of them wait on would wake each in turn and keep them all.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

IDLE = 10.0  # seconds a thread waits for work before it ends

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Idle:
    """A thread waiting for work: what it is handed, and the event that wakes it."""

    __slots__ = ("item", "woken")

    def __init__(self) -> None:
        self.item: _Item | None = None
        self.woken = threading.Event()


class Workers(ThreadPoolExecutor):
    """Only ``submit`` and ``shutdown`` (and ``Executor.map`` on them) are used. It is a
    ``ThreadPoolExecutor`` because asyncio accepts nothing else as a default executor; none of
    that class's own machinery is used."""

    def __init__(self, max_workers: int, *, idle: float = IDLE, name: str = "aios-worker") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        super().__init__(max_workers, thread_name_prefix=name)
        self._max = max_workers
        self._idle_for = idle
        self._name = name
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle: list[_Idle] = []  # a stack: the last to become idle is handed work first
        self._backlog: deque[_Item] = deque()  # work no idle thread was there to take
        self._started = 0
        self._closed = False

    @property
    def threads(self) -> int:
        with self._lock:
            return len(self._threads)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        item: _Item = (future, fn, args, kwargs)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            if self._idle:
                waiting = self._idle.pop()
                waiting.item = item
                waiting.woken.set()
                return future
            self._backlog.append(item)
            if len(self._threads) < self._max:
                self._started += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{self._started - 1}", daemon=True
                )
                self._threads.add(thread)
                thread.start()
        return future

    def _next(self, me: _Idle) -> _Item | None:
        """The next work for this thread; None when it should end (idle too long, shut down)."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            if self._closed:
                self._threads.discard(threading.current_thread())
                return None
            me.item = None
            me.woken.clear()
            self._idle.append(me)
        me.woken.wait(self._idle_for)
        with self._lock:
            if me.item is not None:  # handed work (it left the stack then)
                item, me.item = me.item, None
                return item
            if me in self._idle:  # timed out: nobody will hand it anything now
                self._idle.remove(me)
            if self._backlog:  # shut down: what was submitted before still runs
                return self._backlog.popleft()
            # Idle for too long, or woken by shutdown: no longer counted, in the same step, so
            # that work submitted from now on starts a thread of its own.
            self._threads.discard(threading.current_thread())
            return None

    def _work(self) -> None:
        me = _Idle()
        try:
            while (item := self._next(me)) is not None:
                future, fn, args, kwargs = item
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:  # handed to whoever waits on the future
                        future.set_exception(exc)
                    else:
                        future.set_result(result)
                del item, future, fn, args, kwargs  # nothing kept alive while idle
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while self._backlog:
                    self._backlog.popleft()[0].cancel()
            for waiting in self._idle:
                waiting.woken.set()
            self._idle.clear()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
