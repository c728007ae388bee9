"""The supervisor: launches runs, keeps at most ``max_concurrent`` alive, queues the rest, stops,
restarts with backoff, and is the one place run state changes (``_move``: validate, persist,
publish - in that order, so nothing is ever announced that history does not hold).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aios import workdir
from aios.agents.errors import InvalidLaunch, QueueFull, UnknownAgent, WrongRunState
from aios.agents.process import AgentProcess, SpawnError, kill_stale_group, spawn
from aios.agents.run import Run, RunState, check_transition, new_run_id
from aios.agents.watchdog import Watchdog
from aios.config import AgentDef, Config, RestartPolicy
from aios.events import EventBus
from aios.store import Store

log = logging.getLogger("aios.supervisor")

MAX_QUEUED = 100
LOG_FLUSH_INTERVAL = 0.075  # coalesce output into one `log` event per run per 75 ms
LOG_EVENT_MAX = 64 * 1024  # a flood keeps only the newest bytes of a window; the file has all
TAIL_BYTES = 64 * 1024  # the in-memory tail kept for each live run
STATS_INTERVAL = 2.0
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0


@dataclass
class Live:
    """What the supervisor holds for a run that has not ended yet."""

    run: Run
    agent: AgentDef
    process: AgentProcess | None = None
    stop_requested: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # ends a backoff wait early
    tail: bytearray = field(default_factory=bytearray)
    pending: bytearray = field(default_factory=bytearray)
    pending_offset: int = 0
    skipped: int = 0
    offset: int = 0  # bytes of output read so far
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )


class Supervisor:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        watchdog: Watchdog,
        config: Callable[[], Config],
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
    ) -> None:
        self.store = store
        self.bus = bus
        self.watchdog = watchdog
        self.config = config  # re-read on use, so edits to config.toml apply without a restart
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.live: dict[str, Live] = {}
        self.queue: deque[str] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Mark runs a previous daemon left live as interrupted, killing what is left of them."""
        for run in await self.store.open():
            if run.pid is not None:
                killed = await asyncio.to_thread(kill_stale_group, run.pid, run.pid_started_at)
                if killed:
                    log.warning("killed the leftover process group %d of run %s", run.pid, run.id)
            log.info("run %s was %s when the daemon stopped: interrupted", run.id, run.state)
            check_transition(run.id, run.state, RunState.INTERRUPTED)
            run.state = RunState.INTERRUPTED
            run.ended_at = run.ended_at or time.time()
            await self.store.save(run)
        self._spawn_task(self._sample_stats(), "stats sampler")

    async def shutdown(self, grace: float = 120.0) -> None:
        """Stop every run (SIGTERM → SIGKILL per agent), then wait for the supervise tasks."""
        self._closing = True
        for run_id in list(self.live):
            with contextlib.suppress(WrongRunState):
                await self.stop(run_id)
        pending = [t for t in self._tasks if not t.done()]
        supervising = [t for t in pending if t.get_name().startswith("run ")]
        if supervising:
            _, still = await asyncio.wait(supervising, timeout=grace)
            for task in still:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- requests ------------------------------------------------------------------------------

    async def launch(self, agent_name: str, prompt: str = "", cwd: str | None = None) -> Run:
        config = self.config()
        agent = config.agents.get(agent_name)
        if agent is None:
            raise UnknownAgent(agent_name)
        available, reason = await asyncio.to_thread(agent.availability)
        if not available:
            raise InvalidLaunch(f"agent {agent_name!r} is not available: {reason}")
        if agent.takes_prompt and not prompt.strip():
            raise InvalidLaunch(f"agent {agent_name!r} needs a prompt")
        if len(self.queue) >= MAX_QUEUED:
            raise QueueFull(MAX_QUEUED)
        # File system work (an automounted path can take a while): off the event loop.
        directory = await asyncio.to_thread(resolve_cwd, cwd or agent.cwd)
        run = Run(id=new_run_id(), agent=agent_name, prompt=prompt, cwd=str(directory))
        await self.store.save(run)
        self._publish_run(run)
        self.live[run.id] = Live(run, agent)
        self.queue.append(run.id)
        created = replace(run)  # as created: the live object moves on as soon as it is pumped
        self._pump()
        await self._publish_summary()
        return created

    async def stop(self, run_id: str) -> Run:
        live = self.live.get(run_id)
        if live is None:
            run = await self.store.get(run_id)
            state = run.state if run else "unknown"
            raise WrongRunState(f"run {run_id} has already ended ({state})")
        run = live.run
        live.stop_requested = True
        if run.state is RunState.QUEUED:
            self.queue.remove(run_id)
            await self._move(live, RunState.STOPPED, ended_at=time.time())
            self.live.pop(run_id, None)
        elif run.state is RunState.BACKOFF:
            live.wake.set()  # the supervise task moves it to stopped
        elif run.state is RunState.RUNNING:
            await self._move(live, RunState.STOPPING)
            if live.process is not None:
                self._spawn_task(live.process.stop(live.agent.stop_timeout), f"stop {run_id}")
        return run

    async def delete(self, run_id: str) -> None:
        if run_id in self.live:
            raise WrongRunState(
                f"run {run_id} is still {self.live[run_id].run.state}; stop it first"
            )
        await self.store.delete(run_id)
        self.bus.publish("deleted", {"id": run_id})
        await self._publish_summary()

    async def get(self, run_id: str) -> Run | None:
        live = self.live.get(run_id)
        return live.run if live else await self.store.get(run_id)

    async def list(self, **query: Any) -> list[Run]:
        runs = await self.store.list(**query)
        # The live copy carries the resource figures that history does not.
        return [self.live[r.id].run if r.id in self.live else r for r in runs]

    def tail(self, run_id: str) -> bytes | None:
        live = self.live.get(run_id)
        return bytes(live.tail) if live else None

    async def summary(self) -> dict[str, int]:
        return await self.store.counts()

    # -- the life of a run ---------------------------------------------------------------------

    def _pump(self) -> None:
        limit = self.config().settings.max_concurrent
        while self.queue and self._active() < limit and not self._closing:
            run_id = self.queue.popleft()
            self._spawn_task(self._supervise(self.live[run_id]), f"run {run_id}")

    def _active(self) -> int:
        return sum(1 for live in self.live.values() if live.run.state is not RunState.QUEUED)

    async def _supervise(self, live: Live) -> None:
        try:
            while await self._attempt(live):
                pass
        except Exception as exc:
            log.exception("supervising run %s failed", live.run.id)
            if live.run.state.is_live:
                live.run.state = RunState.FAILED
                live.run.error = f"internal error: {exc}"
                await self.store.save(live.run)
                self._publish_run(live.run)
        finally:
            self.live.pop(live.run.id, None)
            await self.store.close_log(live.run.id)
            await self._publish_summary()
            self._pump()

    async def _attempt(self, live: Live) -> bool:
        """One start of the agent; True if it should start again (restart policy)."""
        run, agent = live.run, live.agent
        await self._move(live, RunState.STARTING, started_at=run.started_at or time.time())
        env = agent_environment(agent, run)
        try:
            process = await spawn(agent.argv(run.prompt), cwd=Path(run.cwd), env=env)
        except SpawnError as exc:
            await self._move(live, RunState.FAILED, error=str(exc), ended_at=time.time())
            return False
        live.process = process
        self.watchdog.register(process.pgid)
        try:
            await self._move(
                live, RunState.RUNNING, pid=process.pid, pid_started_at=process.create_time
            )
            if live.stop_requested and run.state is RunState.RUNNING:  # stopped while starting
                await self._move(live, RunState.STOPPING)
                self._spawn_task(process.stop(agent.stop_timeout), f"stop {run.id}")
            reader = asyncio.create_task(self._read_output(live, process))
            code = await process.wait()
            await reader
            # The leader is gone; any member it left behind goes with it.
            await process.stop(agent.stop_timeout)
        finally:
            self.watchdog.unregister(process.pgid)
            process.close()
            live.process = None
        await self._flush_log(live)
        run.cpu_percent = run.rss_bytes = None
        ended = time.time()
        if live.stop_requested:
            await self._move(live, RunState.STOPPED, exit_code=code, ended_at=ended)
            return False
        if code == 0:
            await self._move(live, RunState.SUCCEEDED, exit_code=code, ended_at=ended)
            return False
        if agent.restart is RestartPolicy.ON_FAILURE and run.restarts < agent.max_restarts:
            await self._move(live, RunState.BACKOFF, exit_code=code)
            delay = min(self.backoff_base * 2**run.restarts, self.backoff_cap)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.wake.wait(), delay)
            if live.stop_requested or self._closing:
                await self._move(live, RunState.STOPPED, ended_at=time.time())
                return False
            run.restarts += 1
            return True
        await self._move(live, RunState.FAILED, exit_code=code, ended_at=ended)
        return False

    async def _read_output(self, live: Live, process: AgentProcess) -> None:
        flusher = asyncio.create_task(self._flush_periodically(live))
        try:
            while chunk := await process.read():
                # Awaiting the writer thread is the backpressure: a flooding agent blocks on its
                # pipe instead of our memory growing.
                await self.store.append_log(live.run.id, chunk)
                live.offset += len(chunk)
                live.tail += chunk
                if len(live.tail) > TAIL_BYTES:
                    del live.tail[: len(live.tail) - TAIL_BYTES]
                live.pending += chunk
                if len(live.pending) > LOG_EVENT_MAX:
                    cut = len(live.pending) - LOG_EVENT_MAX
                    del live.pending[:cut]
                    live.skipped += cut
        finally:
            flusher.cancel()

    async def _flush_periodically(self, live: Live) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_INTERVAL)
            await self._flush_log(live)

    async def _flush_log(self, live: Live) -> None:
        if not live.pending:
            return
        data = bytes(live.pending)
        offset = live.offset - len(data)
        text = live.decoder.decode(data)
        self.bus.publish(
            "log",
            {"run": live.run.id, "offset": offset, "skipped": live.skipped, "text": text},
        )
        live.pending.clear()
        live.skipped = 0

    async def _sample_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            for live in list(self.live.values()):
                process = live.process
                if process is None or live.run.state is not RunState.RUNNING:
                    continue
                sample = await asyncio.to_thread(process.sample)
                if sample is None:
                    continue
                live.run.cpu_percent, live.run.rss_bytes = round(sample[0], 1), sample[1]
                self.bus.publish(
                    "stats",
                    {
                        "run": live.run.id,
                        "cpu_percent": live.run.cpu_percent,
                        "rss_bytes": live.run.rss_bytes,
                    },
                )

    # -- the one place a run changes state ------------------------------------------------------

    async def _move(self, live: Live, target: RunState, **changes: Any) -> None:
        run = live.run
        check_transition(run.id, run.state, target)
        run.state = target
        for name, value in changes.items():
            setattr(run, name, value)
        await self.store.save(run)
        self._publish_run(run)
        if target.is_final or target in (RunState.RUNNING, RunState.STOPPING):
            await self._publish_summary()

    def _publish_run(self, run: Run) -> None:
        self.bus.publish("run", run.to_json())

    async def _publish_summary(self) -> None:
        self.bus.publish("summary", await self.store.counts())

    def _spawn_task(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())


def resolve_cwd(requested: str | None) -> Path:
    try:
        return workdir.resolve(requested)
    except workdir.WorkdirError as exc:
        raise InvalidLaunch(str(exc)) from exc


def agent_environment(agent: AgentDef, run: Run) -> dict[str, str]:
    """The daemon's environment, the agent's own settings, and the run's identity.

    The daemon's token lives only in its memory and the runtime file, never in os.environ, so it
    cannot leak here; AIOS_* variables of our own are replaced rather than inherited.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_") or k == "AIOS_HOME"}
    env.update(agent.env)
    env["AIOS_PROMPT"] = run.prompt
    env["AIOS_RUN_ID"] = run.id
    return env
