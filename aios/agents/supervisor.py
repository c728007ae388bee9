"""The supervisor: the thin async shell around the lifecycle core.

``aios.agents.lifecycle`` decides what happens to a run; this module makes it happen - spawns
processes, reads their output, stops their groups, keeps timers - and reports back what happened
(spawned, exited, timer fired). Every change the core makes goes through ``_apply``, which
persists each changed run and only then publishes it, in the order the core made them: nothing is
ever announced that history does not hold.

History failing (a full disk, a database read-only, failing or damaged: ``StoreUnavailable``)
stops nothing: the core's state in memory is the truth, its changes are carried out and
published all the same, and the store keeps what it could not write and writes it when it can
(tried every ``RETRY_INTERVAL`` while the trouble lasts). Launches are refused meanwhile, with
the trouble as their answer (507 for a full disk, else 503). No background task ends on an
error of one run: each loop step catches and logs what it did not expect.

A run ends when its leader exits. What the leader leaves behind - members of its process group,
and descendants that left the group but are still found in the tree - gets the same stop
escalation as a stopped run (SIGTERM, SIGKILL after ``stop_timeout``). The output reader then
gets ``DRAIN_TIMEOUT`` to reach the end of the output; if something still holds the pipe (a
double-forked escapee, found on Linux by the pipe it holds) it gets SIGTERM and, ``DRAIN_TIMEOUT``
later, SIGKILL, and the pipe is closed: nothing an agent leaves behind can keep its run live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aios import workdir
from aios.agents.definitions import AgentDef, RestartPolicy
from aios.agents.definitions import Catalog as Config
from aios.agents.errors import InvalidLaunch, UnknownAgent, WrongRunState
from aios.agents.formats.base import TwoWay
from aios.agents.isolation import Isolation
from aios.agents.lifecycle import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    Changed,
    Clock,
    Effect,
    Lifecycle,
    Policy,
    Released,
    Schedule,
    Spawn,
    Terminate,
)
from aios.agents.output import Output
from aios.agents.process import (
    REAP_TIMEOUT,
    AgentInputError,
    AgentProcess,
    SpawnError,
    kill_stale_group,
    spawn,
)
from aios.agents.watchdog import Watchdog
from aios.events import EventBus
from aios.formatting import duration
from aios.runs import Activity, Permission, Run, RunState, Worktree, new_run_id
from aios.store import Store, StoreUnavailable
from aios.tasks import TaskSet, cancel
from aios.worktrees import Worktrees

log = logging.getLogger("aios.supervisor")

LOG_FLUSH_INTERVAL = 0.075  # coalesce output into one `log` event per run per 75 ms
STATS_INTERVAL = 2.0
STALL_CHECK = 0.5  # seconds between looks for runs that have gone quiet
# A two-way session is quiet while it waits for the user: that is not a stall.
QUIET_BY_DESIGN = frozenset({Activity.STALLED, Activity.WAITING, Activity.AWAITING_APPROVAL})
# Once the leader is gone and its group stopped, the reader has this long to reach the end of
# the output before the pipe is closed (a child that escaped the group may hold it for ever).
DRAIN_TIMEOUT = 1.0
# How long an agent found available (a PATH search, done on a thread) is trusted: a burst of
# launches costs one search, not one thread hop each. Only "available" is remembered: one that
# was not is searched again at the next launch. A program removed meanwhile fails to spawn.
AVAILABLE_FOR = 2.0
RETRY_INTERVAL = 1.0  # seconds between tries to write what history could not take

Spawner = Callable[..., Awaitable[AgentProcess]]


@dataclass
class Live:
    """What the shell holds for a run that has not ended: the core holds its state."""

    run: Run
    agent: AgentDef
    output: Output
    process: AgentProcess | None = None
    timer: asyncio.Task[None] | None = None
    # The session this run resumes ("" for a CLI that needs no id); None: a new one.
    resume: str | None = None


class Supervisor:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        watchdog: Watchdog,
        config: Callable[[], Config],
        *,
        clock: Clock | None = None,
        spawner: Spawner = spawn,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        worktrees: Worktrees | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.watchdog = watchdog
        self.config = config  # re-read on use, so edits to config.toml apply without a restart
        self.core = Lifecycle(clock=clock, backoff_base=backoff_base, backoff_cap=backoff_cap)
        self._spawn = spawner
        self._live: dict[str, Live] = {}
        self._attempts: dict[str, asyncio.Task[None]] = {}
        self._watchdog_ready: asyncio.Future[None] | None = None  # set by start()
        self._available: dict[str, tuple[AgentDef, float]] = {}  # name → (agent, until)
        self._tasks = TaskSet(log)
        # Effects are applied in the order the core produced them: the core is called and its
        # effects queued here in one step (no await between); see _apply.
        self._pending: deque[tuple[Sequence[Effect], asyncio.Future[None]]] = deque()
        self._committer: asyncio.Task[None] | None = None
        # Worktrees and what runs changed (aios.agents.isolation): git stays out of the core.
        self.isolation = Isolation(
            worktrees or Worktrees(store.database.parent / "worktrees"),
            store,
            self._amend,
            self._tasks,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the watchdog; mark runs a previous daemon left live as interrupted, killing
        what is left of them; then (in the background) record what they changed, and prune
        worktrees of runs AIOS no longer knows.

        The watchdog (another interpreter) starts on a thread, and nothing waits for it but the
        first spawn: serving does not (start-up is measured beside a bare Quart app). No agent
        is ever started before it is ready; if it cannot start, no agent is.
        """
        self._watchdog_ready = asyncio.get_running_loop().run_in_executor(None, self.watchdog.start)
        self._watchdog_ready.add_done_callback(_report_watchdog)
        left: list[Run] = []
        for run in await self.store.open():
            if run.pid is not None:
                killed = await asyncio.to_thread(kill_stale_group, run.pid, run.pid_started_at)
                if killed:
                    log.warning("killed the leftover process group %d of run %s", run.pid, run.id)
            log.info("run %s was %s when the daemon stopped: interrupted", run.id, run.state)
            interrupted = self.core.interrupt(run)
            await self._apply([interrupted])
            left.append(interrupted.run)
        self._tasks.spawn(self._recover(left), "worktrees after a restart")
        self._tasks.spawn(self._sample_stats(), "stats sampler")
        self._tasks.spawn(self._watch_stalls(), "stall watch")
        self.store.on_problem = self._on_store_problem
        self._tasks.spawn(self._keep_history(), "history retry")

    def shutdown_bound(self) -> float:
        """Seconds ``shutdown`` may take: the longest stop escalation among the live runs, then
        the reaping and draining that follow it."""
        timeouts = [live.agent.stop_timeout for live in self._live.values()]
        # A run in a git directory records what it changed before it ends; an unchanged
        # worktree is removed after.
        isolation = self.isolation.shutdown_extra(live.run for live in self._live.values())
        return max(timeouts, default=0.0) + isolation + 2 * REAP_TIMEOUT + 4 * DRAIN_TIMEOUT + 1.0

    async def shutdown(self) -> None:
        """Stop every run (SIGTERM → SIGKILL per agent) and wait for them, within the bound."""
        bound = self.shutdown_bound()
        await self._apply(self.core.close())
        attempts = list(self._attempts.values())
        if attempts:
            _, late = await asyncio.wait(attempts, timeout=bound)
            if late:
                log.error("%d runs did not end within %.1f s of shutdown", len(late), bound)
        await self.isolation.settle()
        await self._tasks.cancel_all()

    # -- requests ------------------------------------------------------------------------------

    async def launch(
        self,
        agent_name: str,
        prompt: str = "",
        cwd: str | None = None,
        permission: Permission | None = None,
        *,
        worktree: bool | None = None,
        reuse_worktree: Worktree | None = None,
    ) -> Run:
        """Create a run and queue it. ``worktree``: work in a git worktree of its own (None: as
        the agent's config says). ``reuse_worktree``: work in that one (a continued run shares
        its parent's; a fresh one is made if it was removed meanwhile)."""
        config = self.config()
        agent = config.agents.get(agent_name)
        if agent is None:
            raise UnknownAgent(agent_name)
        await self.store.check_writable()  # a run that could keep nothing is not started
        await self._check_available(agent)
        if agent.takes_prompt and not prompt.strip():
            raise InvalidLaunch(f"agent {agent_name!r} needs a prompt")
        if permission is not None and permission not in agent.permissions:
            raise InvalidLaunch(f"agent {agent_name!r} has no permission modes")
        # File system work (an automounted path can take a while): off the event loop.
        directory = await asyncio.to_thread(resolve_cwd, cwd or agent.cwd)
        run_id = new_run_id()
        isolate = agent.worktree if worktree is None else worktree
        tree = await self.isolation.prepare(
            run_id, directory, prompt, isolate=isolate, reuse=reuse_worktree
        )
        run = Run(
            id=run_id,
            agent=agent_name,
            prompt=prompt,
            cwd=str(directory),
            permission=permission or agent.default_permission,
            format=agent.format,
            worktree=tree,
        )
        return await self._admit(run, agent, config)

    async def continue_run(self, parent_id: str, prompt: str) -> Run:
        """A new run that resumes ``parent``'s session with ``prompt``: same agent, directory
        and permission. Any ended run whose agent can resume, and that has a session if its
        CLI needs one, can be continued: a crash or a stop loses nothing."""
        if (live := self.core.run(parent_id)) is not None:
            how = "send it a message" if self._live[parent_id].agent.two_way else "wait for it"
            raise WrongRunState(f"run {parent_id} is still {live.state}: {how} instead")
        parent = await self.store.get(parent_id)
        if parent is None:
            raise WrongRunState(f"run {parent_id} no longer exists")
        config = self.config()
        agent = config.agents.get(parent.agent)
        if agent is None:
            raise UnknownAgent(parent.agent)
        if not agent.can_resume:
            raise InvalidLaunch(f"agent {agent.name!r} cannot resume a session")
        if agent.output.needs_session and not parent.session_id:
            raise InvalidLaunch(f"run {parent_id} has no session to continue")
        if not prompt.strip():
            raise InvalidLaunch("a continuation needs a prompt")
        await self.store.check_writable()
        await self._check_available(agent)
        run_id = new_run_id()
        directory = resolve_cwd(parent.cwd)
        # In the parent's worktree, where its session ran (a fresh one if it is gone).
        tree = None
        if parent.worktree is not None:
            tree = await self.isolation.prepare(
                run_id, directory, prompt, isolate=True, reuse=parent.worktree
            )
        run = Run(
            id=run_id,
            agent=parent.agent,
            prompt=prompt,
            cwd=str(directory),
            permission=parent.permission if parent.permission in agent.permissions else None,
            format=agent.format,
            parent=parent.id,
            session_id=parent.session_id,  # the same session, resumed
            worktree=tree,
        )
        return await self._admit(run, agent, config, resume=parent.session_id or "")

    async def _admit(
        self, run: Run, agent: AgentDef, config: Config, resume: str | None = None
    ) -> Run:
        # From here to the core's answer nothing awaits: admission is atomic.
        self.core.max_concurrent = config.settings.max_concurrent
        try:
            effects = self.core.launch(run, policy(agent))
        except BaseException:
            self.isolation.abandon(run.id, run.worktree)  # a worktree made for it goes
            raise
        output = Output(run, agent, self.store, self.bus)
        self._live[run.id] = Live(run, agent, output, resume=resume)
        await self._apply(effects)
        first = effects[0]
        assert isinstance(first, Changed)
        return first.run  # as created: the live record moves on as soon as it is admitted

    # -- two-way sessions ------------------------------------------------------------------------

    async def message(self, run_id: str, text: str) -> Run:
        """A follow-up prompt for a live two-way session: it goes to the running agent."""
        if not text.strip():
            raise InvalidLaunch("a message needs some text")
        live, session = self._session(run_id)
        await self._write(live, session.message(text))
        reducer = live.output.reducer
        if reducer is not None:
            reducer.knowledge.working()
        live.output.learn()
        await self._publish_output(live)
        return live.run

    async def decide(self, run_id: str, approval_id: str, allow: bool, message: str = "") -> Run:
        """Answer a pending request of a two-way session. Only a pending id can be decided;
        deciding one again is harmless (nothing is sent twice)."""
        live, session = self._session(run_id)
        output, reducer = live.output, live.output.reducer
        if approval_id in output.answered:
            return live.run
        if reducer is None or all(a.id != approval_id for a in reducer.knowledge.approvals):
            raise WrongRunState(f"run {run_id} has no pending approval {approval_id!r}")
        tool_input = reducer.approval_inputs.pop(approval_id, {})
        await self._write(live, session.answer(approval_id, allow, message, tool_input))
        output.answered.add(approval_id)
        reducer.knowledge.answered(approval_id)
        output.learn()
        await self._publish_output(live)
        return live.run

    async def finish(self, run_id: str) -> Run:
        """The user is done with a two-way session: its input closes, and the agent ends."""
        live, _ = self._session(run_id)
        if live.process is not None:
            live.process.close_input()
        return live.run

    def _session(self, run_id: str) -> tuple[Live, TwoWay]:
        live = self._live.get(run_id)
        if live is None or run_id not in self.core:
            raise WrongRunState(f"run {run_id} has ended: continue it instead")
        session = live.agent.output.two_way
        if not live.agent.two_way or session is None:
            raise WrongRunState(f'run {run_id} is not a two-way session (approvals = "ask")')
        if live.process is None:
            raise WrongRunState(f"run {run_id} is {live.run.state}: its agent is not running")
        return live, session

    async def _write(self, live: Live, line: str) -> None:
        assert live.process is not None
        try:
            await live.process.write_line(line)
        except AgentInputError as exc:
            raise WrongRunState(f"run {live.run.id}: {exc}") from exc

    async def _check_available(self, agent: AgentDef) -> None:
        now = self.core.clock.monotonic()
        known, until = self._available.get(agent.name, (None, 0.0))
        if known is agent and now < until:  # the same definition (config.toml not changed)
            return
        available, reason = await asyncio.to_thread(agent.availability)
        if not available:
            self._available.pop(agent.name, None)
            raise InvalidLaunch(f"agent {agent.name!r} is not available: {reason}")
        self._available[agent.name] = (agent, now + AVAILABLE_FOR)

    async def stop(self, run_id: str) -> Run:
        if run_id not in self.core:
            run = await self.store.get(run_id)
            state = run.state if run else "unknown"
            raise WrongRunState(f"run {run_id} has already ended ({state})")
        live = self._live[run_id]
        await self._apply(self.core.stop(run_id))
        return live.run

    async def stop_all(self) -> None:
        for run_id in self.core.live_ids:
            if run_id in self.core:  # not ended meanwhile
                await self._apply(self.core.stop(run_id))

    async def delete(self, run_id: str, *, discard: bool = False) -> None:
        """Forget a run; its worktree goes too (its work kept on its branch unless ``discard``)."""
        if (run := self.core.run(run_id)) is not None:
            raise WrongRunState(f"run {run_id} is still {run.state}; stop it first")
        if (stored := await self.store.get(run_id)) is not None:
            await self.isolation.forget(stored, discard=discard)
        await self.store.delete(run_id)
        self.bus.publish("deleted", {"id": run_id})
        self._publish_summary()

    async def get(self, run_id: str) -> Run | None:
        return self.core.run(run_id) or await self.store.get(run_id)

    async def list(self, **query: Any) -> list[Run]:
        runs = await self.store.list(**query)
        # The live copy carries the resource figures that history does not.
        return [self.core.run(r.id) or r for r in runs]

    async def summary(self) -> dict[str, int]:
        return self.store.summary()

    # -- carrying out what the core decided ------------------------------------------------------

    async def _apply(self, effects: Sequence[Effect]) -> None:
        """Carry out a step of the core: persist the runs it changed, then publish them and do
        the rest, in the order the core made them. Returns once done; raises what failed.

        Steps are queued, in order, for one committer task. While it waits for a commit, the
        steps that arrive meanwhile (other runs starting and ending) wait too, and then go to
        the store's thread together, in one transaction: a group commit, one trip for many.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((effects, done))
        if self._committer is None or self._committer.done():
            self._committer = self._tasks.spawn(self._commit_pending(), "commit")
        await done

    async def _commit_pending(self) -> None:
        steps: list[tuple[Sequence[Effect], asyncio.Future[None]]] = []
        try:
            while self._pending:
                steps = list(self._pending)
                self._pending.clear()
                effects = [effect for step, _ in steps for effect in step]
                try:
                    # Every run these steps changed, in one transaction, before any of them is
                    # published; the logs of the runs that ended are closed in the same trip.
                    pruned = await self.store.save_many(
                        [e.run for e in effects if isinstance(e, Changed)],
                        close_logs=[e.run_id for e in effects if isinstance(e, Released)],
                    )
                except StoreUnavailable:
                    # Memory is the truth meanwhile; the store keeps these runs and writes
                    # them when it can (_keep_history), and has said why once. What the steps
                    # say still happens.
                    pruned = []
                except Exception as exc:
                    for _, done in steps:
                        _settle(done, exc)
                    continue
                if pruned:
                    self.isolation.pruned(pruned)
                moved = False
                for step, done in steps:
                    try:
                        moved = self._carry_out(step) or moved
                    except Exception as exc:
                        _settle(done, exc)
                    else:
                        _settle(done, None)
                if moved:
                    self._publish_summary()
        finally:
            # Cancelled (shutdown) with steps not done: their callers must not wait for ever.
            for _, done in [*steps, *self._pending]:
                _settle(done, RuntimeError("the supervisor stopped"))

    def _carry_out(self, effects: Sequence[Effect]) -> bool:
        """Publish and do one step's effects (its runs are saved); whether a run changed state."""
        moved = False
        for effect in effects:
            if isinstance(effect, Changed):
                self.bus.publish("run", effect.run.to_json())
                moved = moved or effect.source is not effect.run.state
            elif isinstance(effect, Spawn):
                self._start_attempt(self._live[effect.run_id])
            elif isinstance(effect, Terminate):
                self._terminate(self._live[effect.run_id])
            elif isinstance(effect, Schedule):
                self._schedule(self._live[effect.run_id], effect)
            elif isinstance(effect, Released):
                ended = self._live.pop(effect.run_id)
                self._cancel_timer(ended)
                self.isolation.ended(ended.run)
        return moved

    def _start_attempt(self, live: Live) -> None:
        task = self._tasks.spawn(self._attempt(live), f"run {live.run.id}")
        self._attempts[live.run.id] = task
        task.add_done_callback(lambda t: self._forget_attempt(live.run.id, t))

    def _forget_attempt(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self._attempts.get(run_id) is task:
            del self._attempts[run_id]

    def _terminate(self, live: Live) -> None:
        if live.process is not None:
            process, timeout = live.process, live.agent.stop_timeout
            self._tasks.spawn(process.stop(timeout), f"stop {live.run.id}")

    def _schedule(self, live: Live, effect: Schedule) -> None:
        self._cancel_timer(live)
        live.timer = self._tasks.spawn(
            self._timer(effect.run_id, effect.token, effect.delay), f"timer {effect.run_id}"
        )

    def _cancel_timer(self, live: Live) -> None:
        if live.timer is not None and live.timer is not asyncio.current_task():
            live.timer.cancel()
        live.timer = None

    async def _timer(self, run_id: str, token: int, delay: float) -> None:
        await asyncio.sleep(delay)
        # The core is asked and its effects queued in one step, like every other caller.
        await self._apply(self.core.timer_fired(run_id, token))

    # -- one start of an agent -------------------------------------------------------------------

    async def _attempt(self, live: Live) -> None:
        run, agent, output = live.run, live.agent, live.output
        try:
            if self._watchdog_ready is not None:
                await asyncio.shield(self._watchdog_ready)  # raises if it could not start
            output.new_attempt(self.core.clock.monotonic())
            await self.isolation.starting(run)
            try:
                process = await self._spawn(
                    agent.argv(run.prompt, run.permission, resume=live.resume),
                    cwd=self.isolation.directory(run),
                    env=agent_environment(agent, run),
                    merge_stderr=not agent.output.structured,
                    stdin=agent.two_way,
                )
            except SpawnError as exc:
                await self._apply(self.core.spawn_failed(run.id, str(exc)))
                return
            code = await self._watch(live, process)
            run.changes = await self.isolation.record(run)  # in the record that ends the run
            outcome = await output.outcome(code)
            await self.store.settle_log(run.id)
            if lost := self.store.lost_output(run.id):
                outcome = replace(outcome, lost=lost)
            await self._publish_output(live)
            run.cpu_percent = run.rss_bytes = None
            await self._apply(self.core.exited(run.id, code, outcome))
            output.attention_at_end()
            output.publish_attention()
        except Exception as exc:
            log.exception("supervising run %s failed", run.id)
            await self._apply(self.core.crashed(run.id, f"internal error: {exc}"))
        # The log is closed when the run ends (``Released``, in ``_apply``).

    async def _watch(self, live: Live, process: AgentProcess) -> int:
        """Follow the process until its leader exits and what it left is gone; its exit code."""
        run = live.run
        live.process = process
        self.watchdog.register(process.pgid)
        try:
            await self._apply(
                self.core.spawned(run.id, pid=process.pid, pid_started_at=process.create_time)
            )
            reader = self._tasks.spawn(self._read_output(live, process), f"output {run.id}")
            if (session := live.agent.output.two_way) is not None and live.agent.two_way:
                await self._open_session(live, process, session)
            code = await process.wait()
            # The leader is gone; what it left behind goes the way of a stopped run.
            try:
                await process.stop(live.agent.stop_timeout)
            except TimeoutError:
                log.exception("run %s: members of its group survived SIGKILL", run.id)
            _, reading = await asyncio.wait({reader}, timeout=DRAIN_TIMEOUT)
            if reading:
                # Someone outside the group and the tree still holds the output: a double fork.
                await process.stop_pipe_holders(DRAIN_TIMEOUT)
                process.close()
                _, reading = await asyncio.wait(reading, timeout=DRAIN_TIMEOUT)
                await cancel(reading, DRAIN_TIMEOUT)
            return code
        finally:
            self.watchdog.unregister(process.pgid)
            process.close()
            live.process = None

    async def _open_session(self, live: Live, process: AgentProcess, session: TwoWay) -> None:
        """A two-way session starts with the format's opening and the prompt as a message."""
        try:
            for line in [*session.opening(), session.message(live.run.prompt)]:
                await process.write_line(line)
        except AgentInputError as exc:  # it exited at once: its output says why
            log.warning("run %s: could not start the conversation: %s", live.run.id, exc)

    async def _read_output(self, live: Live, process: AgentProcess) -> None:
        flusher = self._tasks.spawn(self._flush_periodically(live), f"flush {live.run.id}")
        try:
            await live.output.read(process, self.core.clock.monotonic)
        finally:
            flusher.cancel()

    async def _flush_periodically(self, live: Live) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_INTERVAL)
            try:
                await self._publish_output(live)
            except Exception:  # the next flush may do better; the reader must go on
                log.exception("publishing the output of run %s failed", live.run.id)

    async def _publish_output(self, live: Live) -> None:
        """The output since the last call as one ``log`` event; what the run learned from it,
        persisted and published; then any call for the user's attention."""
        output = live.output
        output.flush_log()
        if output.dirty and live.run.id in self.core:
            output.dirty = False
            await self._apply([Changed(replace(live.run), live.run.state)])
        output.publish_attention()

    async def _watch_stalls(self) -> None:
        """A run that prints nothing for its agent's ``stall_after`` seconds is stalled."""
        while True:
            await asyncio.sleep(STALL_CHECK)
            now = self.core.clock.monotonic()
            for live in list(self._live.values()):
                try:
                    await self._check_stall(live, now)
                except Exception:  # one run's trouble must not end the watch of every run
                    log.exception("watching run %s for stalls failed", live.run.id)

    async def _check_stall(self, live: Live, now: float) -> None:
        quiet, limit = now - live.output.last_heard, live.agent.stall_after
        if (
            live.process is not None
            and live.run.state in (RunState.STARTING, RunState.RUNNING)
            and 0 < limit <= quiet
            and live.run.activity not in QUIET_BY_DESIGN
        ):
            live.output.set_activity(Activity.STALLED, f"no output for {duration(quiet)}")
            await self._publish_output(live)
        await self._deny_late(live, now)

    async def _keep_history(self) -> None:
        """While history is in trouble, write what it could not take, and notice recovery; and
        notice a database file damaged under us."""
        while True:
            await asyncio.sleep(RETRY_INTERVAL)
            try:
                await self.store.watch()
                if self.store.problem is not None:
                    await self.store.retry()
            except Exception:
                log.exception("writing history again failed")

    def _on_store_problem(self, problem: StoreUnavailable | None) -> None:
        self.bus.publish("storage", {"problem": None if problem is None else problem.to_json()})
        if problem is None:
            self._publish_summary()

    async def _deny_late(self, live: Live, now: float) -> None:
        """An agent's ``approval_timeout`` passed with a request unanswered: it is denied."""
        timeout = live.agent.approval_timeout
        for approval_id, asked in list(live.output.asked.items()):
            if 0 < timeout <= now - asked:
                why = f"No answer within {timeout:g} s: denied."
                with contextlib.suppress(WrongRunState):
                    await self.decide(live.run.id, approval_id, False, why)

    async def _sample_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            for live in list(self._live.values()):
                process = live.process
                if process is None or live.run.state not in (RunState.STARTING, RunState.RUNNING):
                    continue
                try:
                    sample = await asyncio.to_thread(process.sample)
                except Exception:  # one process's figures are not worth every run's
                    log.exception("sampling run %s failed", live.run.id)
                    continue
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

    async def _amend(self, run: Run) -> None:
        """Persist a change to a run that has ended (never bringing back a deleted one), then
        publish it: what happened to its worktree, its changes found after a restart."""
        await self._apply([])  # after every step queued before it
        try:
            kept = await self.store.update(run)
        except StoreUnavailable as exc:  # kept in memory by the store, written when it can
            log.warning("run %s: its change is not written yet: %s", run.id, exc)
            kept = True
        if kept:
            self.bus.publish("run", run.to_json())

    async def _recover(self, interrupted: Sequence[Run]) -> None:
        await self.isolation.recover(interrupted)
        await self.isolation.prune()

    def _publish_summary(self) -> None:
        self.bus.publish("summary", self.store.summary())


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    """Tell a step's caller how it went, unless the caller has gone (its future cancelled):
    the step is carried out all the same."""
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _report_watchdog(started: asyncio.Future[None]) -> None:
    if not started.cancelled() and (exc := started.exception()) is not None:
        log.error("the watchdog could not start, so no agent will be: %s", exc)


def policy(agent: AgentDef) -> Policy:
    return Policy(
        restart_on_failure=agent.restart is RestartPolicy.ON_FAILURE,
        max_restarts=agent.max_restarts,
        start_seconds=agent.start_seconds,
    )


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
    env: dict[str, str] = {
        k: v for k, v in os.environ.items() if not k.startswith("AIOS_") or k == "AIOS_HOME"
    }
    env.update(agent.env)
    env["AIOS_PROMPT"] = run.prompt
    env["AIOS_RUN_ID"] = run.id
    return env
