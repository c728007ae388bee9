"""From the event bus to the hooks, never in anyone's way.

The bus calls ``on_bus_event`` on the loop, inside ``publish``: it only looks at the event and, if
some hook wants it, puts jobs in a bounded queue. ``WORKERS`` tasks take jobs from it, so at most
that many hooks run at once; a hook that hangs holds one worker until its timeout, never the
run, the event streams, the tray or the other workers. A full queue drops its oldest job, with
a log line. A URL hook's retry waits off the workers (a timer puts it back in the queue).

Which change is which event: ``started`` when a run enters ``running``; ``succeeded``,
``failed``, ``stopped`` when a run this daemon saw live ends so (a finished run republished for
what happened to its worktree is not a new end); ``attention`` and ``approval`` from the bus's
``attention`` events. Nothing the daemon finds at start-up is replayed (finished runs in the
history, old events); the one exception is ``interrupted``: a run that was live when the previous
daemon died becomes interrupted once, when this daemon starts, and that is news its hooks hear.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import subprocess
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import Any

from aios.events import Event, EventBus
from aios.hooks import delivery
from aios.hooks.delivery import Delivery, Outcome
from aios.hooks.message import HookEvent
from aios.hooks.spec import Hook
from aios.tasks import TaskSet

log = logging.getLogger("aios.hooks")

WORKERS = 4  # hooks delivering at once
QUEUE = 256  # jobs waiting; beyond this the oldest is dropped
RETRIES = 3  # more attempts for a URL hook after a 5xx or a connection error
BACKOFF = (1.0, 2.0, 4.0)  # seconds before each retry
REMEMBERED = 1024  # runs whose last record is kept, for attention events that follow their end
URL_MARGIN = 1.0  # seconds past its timeout a URL attempt may take in all
LIVE = frozenset({"queued", "starting", "running", "stopping", "backoff"})
ENDS = frozenset({"succeeded", "failed", "stopped"})


@dataclass(frozen=True)
class Job:
    hook: Hook
    event: HookEvent
    attempt: int = 1


class Dispatcher:
    def __init__(
        self,
        hooks: Callable[[], tuple[Hook, ...]],
        base_url: str,
        secrets: Iterable[str] = (),
        *,
        workers: int = WORKERS,
        queue: int = QUEUE,
        backoff: tuple[float, ...] = BACKOFF,
        deliver: Callable[[Hook, HookEvent], Awaitable[Outcome]] | None = None,
    ) -> None:
        """``deliver``: how one attempt is made (a seam for tests); by default a command is
        run and a URL is posted to."""
        self._hooks = hooks  # the hooks as config.toml says now (re-read when it changes)
        self._base_url = base_url
        self._secrets = frozenset(s for s in secrets if s)
        self._workers = workers
        self._backoff = backoff
        self._queue: deque[Job] = deque(maxlen=queue)
        self._ready = asyncio.Event()
        self._tasks = TaskSet(log)
        self._timers: set[asyncio.TimerHandle] = set()
        # A thread per worker, and a spare for a URL attempt given up on while its socket still
        # waits (it ends at the socket's timeout).
        self._pool = concurrent.futures.ThreadPoolExecutor(workers + 2, "aios-hook")
        # What is delivering now, to end at shutdown: command hooks, and URL connections.
        self._running: set[subprocess.Popen[bytes]] = set()
        self._connections: set[HTTPConnection] = set()
        self._live: dict[str, str] = {}  # run id -> state, for runs seen live
        self._runs: OrderedDict[str, dict[str, Any]] = OrderedDict()  # latest record per run
        self._starting = False
        self._interrupted: set[str] = set()
        self._closed = False
        self._remove_listener: Callable[[], None] | None = None
        self._busy = 0  # workers delivering now
        self._idle = asyncio.Event()  # nothing queued, nothing delivering
        self._idle.set()
        self.last: dict[Hook, Delivery] = {}
        self._deliver = deliver or self._attempt

    # -- lifecycle -----------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        """Listen to ``bus`` (call before the supervisor starts: ``interrupted`` comes then)."""
        self._starting = True
        self._remove_listener = bus.add_listener(self.on_bus_event)
        for number in range(self._workers):
            self._tasks.spawn(self._work(), f"hook worker {number + 1}")

    def started(self) -> None:
        """Start-up is over: from now on an ``interrupted`` record is a republished one."""
        self._starting = False
        self._interrupted.clear()

    async def close(self, grace: float, cancel: float) -> None:
        """Let queued deliveries go out for up to ``grace`` seconds, then end the rest (within
        ``cancel`` seconds; a command hook's process group is killed)."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._timers:
            log.warning("%d hook retries dropped at shutdown", len(self._timers))
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        self._closed = True
        if self._queue:
            log.warning("%d hook deliveries dropped at shutdown", len(self._queue))
            self._queue.clear()
        # Their threads see them end, and return: none is left to hold up the process's exit.
        for process in list(self._running):
            delivery.kill_group(process)
        for connection in list(self._connections):
            delivery.hang_up(connection)
        await self._tasks.cancel_all(timeout=cancel)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- what the bus says ---------------------------------------------------------------------

    def on_bus_event(self, event: Event) -> None:
        """On the loop, inside ``publish``: never blocks, never raises into the bus."""
        if event.kind == "run":
            self._on_run(event.data)
        elif event.kind == "attention":
            data = event.data
            name = "approval" if data.get("reason") == "awaiting_approval" else "attention"
            run_id = str(data.get("run", ""))
            run = self._runs.get(run_id) or {"id": run_id, "agent": data.get("agent", "")}
            self._fire(name, run, data)

    def _on_run(self, run: dict[str, Any]) -> None:
        run_id, state = str(run.get("id")), str(run.get("state"))
        self._runs[run_id] = run
        self._runs.move_to_end(run_id)
        while len(self._runs) > REMEMBERED:
            self._runs.popitem(last=False)
        before = self._live.get(run_id)
        if state in LIVE:
            self._live[run_id] = state
            if state == "running" and before != "running":
                self._fire("started", run)
        elif state in ENDS and before is not None:
            del self._live[run_id]
            self._fire(state, run)
        elif state == "interrupted" and self._starting and run_id not in self._interrupted:
            self._interrupted.add(run_id)
            self._fire("interrupted", run)

    def _fire(
        self, name: str, run: dict[str, Any], attention: dict[str, Any] | None = None
    ) -> None:
        if self._closed:
            return
        wanted = [hook for hook in self._hooks() if hook.wants(name, str(run.get("agent", "")))]
        if not wanted:
            return
        event = HookEvent(name, run, self.run_url(str(run.get("id", ""))), attention)
        for hook in wanted:
            self._enqueue(Job(hook, event))

    def _enqueue(self, job: Job) -> None:
        if len(self._queue) == self._queue.maxlen:
            dropped = self._queue[0]  # the deque drops it as the new job goes in
            log.warning(
                "hook %d: too many deliveries waiting; dropped the oldest (%s of run %s)",
                dropped.hook.number,
                dropped.event.name,
                dropped.event.run_id,
            )
        self._queue.append(job)
        self._idle.clear()
        self._ready.set()

    def run_url(self, run_id: str) -> str:
        return f"{self._base_url.rstrip('/')}/runs/{run_id}"

    # -- delivering ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            job = self._queue.popleft()
            self._busy += 1
            try:
                outcome = await self._deliver(job.hook, job.event)
            except Exception as exc:  # a bug here must not end the worker
                log.exception("hook %d failed", job.hook.number)
                outcome = Outcome(False, f"internal error: {exc}")
            finally:
                self._busy -= 1
                if not self._busy and not self._queue:
                    self._idle.set()
            if outcome.retry and job.attempt <= min(RETRIES, len(self._backoff)):
                delay = self._backoff[job.attempt - 1]
                self._later(delay, Job(job.hook, job.event, job.attempt + 1), outcome)
                continue
            self._record(job.hook, job.event, outcome, job.attempt)

    def _later(self, delay: float, job: Job, why: Outcome) -> None:
        log.info(
            "hook %d: %s for %s of run %s; attempt %d in %g s",
            job.hook.number, why.detail, job.event.name, job.event.run_id, job.attempt, delay,
        )  # fmt: skip

        def again() -> None:
            self._timers.discard(timer)
            if not self._closed:
                self._enqueue(job)

        timer = asyncio.get_running_loop().call_later(delay, again)
        self._timers.add(timer)

    async def _attempt(self, hook: Hook, event: HookEvent) -> Outcome:
        loop = asyncio.get_running_loop()
        if hook.command is not None:
            env = self.environment()
            return await loop.run_in_executor(
                self._pool, delivery.run_command, hook, event, env, self._running
            )
        attempt = loop.run_in_executor(self._pool, delivery.post, hook, event, self._connections)
        try:
            # The socket's timeout bounds each step (connect, send, each read); this bounds the
            # whole, name lookup included. A thread left behind ends at its socket's timeout,
            # or at shutdown.
            return await asyncio.wait_for(attempt, hook.timeout + URL_MARGIN)
        except TimeoutError:
            return Outcome(False, f"timed out after {hook.timeout:g} s")

    def _record(self, hook: Hook, event: HookEvent, outcome: Outcome, attempts: int) -> Delivery:
        done = delivery.finished(event, outcome, attempts)
        current = set(self._hooks())  # hooks edited out of the file are forgotten
        self.last = {h: d for h, d in self.last.items() if h in current}
        self.last[hook] = done
        if outcome.ok:
            log.debug("hook %d: %s of run %s: %s", hook.number, event.name, event.run_id, done)
        else:
            tries = f" (after {attempts} attempts)" if attempts > 1 else ""
            log.warning(
                "hook %d (%s) failed for %s of run %s: %s%s",
                hook.number, hook.target, event.name, event.run_id, outcome.detail, tries,
            )  # fmt: skip
        return done

    async def test(self, hook: Hook, run: dict[str, Any]) -> Delivery:
        """Deliver a ``test`` event to ``hook`` now, with its retries, and say how it went."""
        event = HookEvent("test", run, self.run_url(str(run.get("id", ""))))
        attempt = 1
        while True:
            outcome = await self._deliver(hook, event)
            if not outcome.retry or attempt > min(RETRIES, len(self._backoff)):
                return self._record(hook, event, outcome, attempt)
            await asyncio.sleep(self._backoff[attempt - 1])
            attempt += 1

    def environment(self) -> dict[str, str]:
        """The daemon's environment for a command hook: none of AIOS's own variables (but
        ``AIOS_HOME``, so the hook's ``aios`` commands find this daemon), and no variable whose
        value is one of the daemon's secrets. (The token lives in memory and the runtime file,
        never in ``os.environ``; this is belt and braces.)"""
        return {
            key: value
            for key, value in os.environ.items()
            if (not key.startswith("AIOS_") or key == "AIOS_HOME")
            and not any(secret in value for secret in self._secrets)
        }

    def deliveries(self, hooks: Iterable[Hook]) -> list[Delivery | None]:
        return [self.last.get(hook) for hook in hooks]
