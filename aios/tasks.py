"""Background tasks, tracked: none is lost, none fails silently, all can be waited for or ended.

A bare ``asyncio.create_task`` keeps only a weak reference (the task can be collected mid-flight)
and its exception is reported only when it is garbage collected, if ever. Every background task
of the daemon goes through a :class:`TaskSet` instead (as Quart does for its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("background task %r failed", task.get_name(), exc_info=exc)

    async def cancel_all(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Cancel every task and wait (at most ``timeout``) for them to finish."""
        await cancel(list(self._tasks), timeout)


async def cancel(tasks: Iterable[asyncio.Task[Any]], timeout: float) -> None:  # noqa: ASYNC109
    """Cancel ``tasks`` and wait up to ``timeout`` for them to end; log the ones that did not."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=timeout)
    for task in still:
        logging.getLogger("aios.tasks").warning(
            "task %r did not end within %g s of being cancelled", task.get_name(), timeout
        )
