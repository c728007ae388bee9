"""The supervisor: the thin async shell around the lifecycle core.

``aios.agents.lifecycle`` decides what happens to a run, and is the only writer of run records;
this module makes what it decides happen - spawns processes (``aios.agents.attempt``), stops
their groups, keeps timers, writes answers to two-way sessions - and reports back what happened
(spawned, the output said something, exited, a timer fired, a request answered, a resource
sample). Every step of the core goes through the recorder (``aios.agents.recorder``), the one
path to history: each changed run is persisted, and only then published, in the order the core
made them.

History failing (``StoreUnavailable``: a full disk, a database read-only or damaged) stops
nothing: the core's state in memory is the truth, and the store writes what it kept when it can
(tried every ``RETRY_INTERVAL``); launches are refused meanwhile, saying why. No background task
ends on an error of one run: each loop step catches and logs what it did not expect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aios import memory, workdir
from aios.agents.attempt import DRAIN_TIMEOUT, Attempts, Held, Spawner, policy
from aios.agents.conversation import Conversations
from aios.agents.definitions import AgentDef, Catalog
from aios.agents.effects import (
    Answer,
    Changed,
    Clock,
    Effect,
    Probe,
    Released,
    Schedule,
    Spawn,
    Terminate,
)
from aios.agents.errors import InvalidLaunch, UnknownAgent, WrongRunState
from aios.agents.final_screens import SETTLE_SCREENS, FinalScreens
from aios.agents.isolation import Isolation
from aios.agents.lifecycle import BACKOFF_BASE, BACKOFF_CAP, Lifecycle
from aios.agents.output import Output
from aios.agents.process import REAP_TIMEOUT
from aios.agents.process_groups import kill_stale_group
from aios.agents.recorder import Recorder
from aios.agents.spawning import spawn
from aios.agents.terminals import LiveTerminal
from aios.agents.watchdog import Watchdog
from aios.events import EventBus
from aios.runs import Permission, Run, Worktree, new_run_id
from aios.store import Store
from aios.store_errors import StoreUnavailable
from aios.tasks import TaskSet
from aios.worktrees import Worktrees

log = logging.getLogger("aios.supervisor")

STATS_INTERVAL = 2.0
# How long an agent found available (a PATH search, on a thread) is trusted: a burst of launches
# costs one search. Only "available" is remembered; a program removed meanwhile fails to spawn.
AVAILABLE_FOR = 2.0
RETRY_INTERVAL = 1.0  # seconds between tries to write what history could not take


class Supervisor:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        watchdog: Watchdog,
        config: Callable[[], Catalog],
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
        self._attempts: dict[str, asyncio.Task[None]] = {}
        self._available: dict[str, tuple[AgentDef, float]] = {}  # name → (agent, until)
        self._directories = workdir.Recent(resolve_cwd, AVAILABLE_FOR, self.core.clock.monotonic)
        self._tasks = TaskSet(log)
        # Worktrees and what runs changed (aios.agents.isolation): git stays out of the core.
        self.isolation = Isolation(
            worktrees or Worktrees(store.database.parent / "worktrees"),
            store,
            self._amend,
            self._tasks,
        )
        self.recorder = Recorder(
            store, bus, self._tasks, carry_out=self._carry_out, pruned=self.isolation.pruned
        )
        self._apply = self.recorder.apply
        self.attempts = Attempts(
            self.core,
            self._apply,
            store,
            watchdog,
            self.isolation,
            self._tasks,
            spawner,
            self._holding,
        )
        self.conversations = Conversations(self.core, self._apply, self.attempts.publish_now)
        self.screens = FinalScreens(store, self._tasks)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the watchdog; mark runs a previous daemon left live as interrupted, killing
        what is left of them; then (in the background) record what they changed, and prune
        worktrees of runs AIOS no longer knows.

        The watchdog (another interpreter) starts on a thread, and nothing waits for it but the
        first spawn: serving does not (start-up is measured beside a bare Quart app). No agent
        is ever started before it is ready; if it cannot start, no agent is.
        """
        self.attempts.start_watchdog()
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
        self._tasks.spawn(self.attempts.sample_stats(STATS_INTERVAL), "stats sampler")
        self.store.on_problem = self._on_store_problem
        self._tasks.spawn(self._keep_history(), "history retry")

    def shutdown_bound(self) -> float:
        """Seconds ``shutdown`` may take: the longest stop escalation among the live runs, then
        the reaping and draining that follow it."""
        timeouts = [held.agent.stop_timeout for _, held in self._holding()]
        # A run in a git directory records its changes before it ends (worktree removed after).
        live = [run for run_id in self.core.live_ids if (run := self.core.run(run_id))]
        isolation = self.isolation.shutdown_extra(live)
        extra = isolation + SETTLE_SCREENS
        return max(timeouts, default=0.0) + extra + 2 * REAP_TIMEOUT + 4 * DRAIN_TIMEOUT + 1.0

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
        await self.screens.settle()  # the last screens of the runs it stopped, kept
        for _, held in self._holding():  # runs that did not end in time: their timers go too
            for timer in held.timers.values():
                timer.cancel()
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
        terminal: bool | None = None,
    ) -> Run:
        """Create a run and queue it. ``worktree``: work in a git worktree of its own (None: as
        the agent's config says). ``reuse_worktree``: work in that one (a continued run shares
        its parent's; a fresh one is made if it was removed meanwhile). ``terminal``: give its
        program a pseudo-terminal (None: as the agent's config says)."""
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
        # On a thread, unless the same directory was found usable a moment ago.
        directory = await self._directories.resolve(cwd or agent.cwd)
        run_id = new_run_id()
        isolate = agent.worktree if worktree is None else worktree
        on_terminal = agent.terminal if terminal is None else terminal
        tree = await self.isolation.prepare(
            run_id, directory, prompt, isolate=isolate, reuse=reuse_worktree
        )
        run = Run(
            id=run_id,
            agent=agent_name,
            prompt=prompt,
            cwd=str(directory),
            permission=permission or agent.default_permission,
            # A terminal's output is a screen, kept as it came: no format reads it.
            format="text" if on_terminal else agent.format,
            worktree=tree,
            terminal=on_terminal,
        )
        return await self._admit(run, agent, config)

    async def continue_run(self, parent_id: str, prompt: str) -> Run:
        """A new run that resumes ``parent``'s session with ``prompt``: same agent, directory
        and permission. Any ended run whose agent can resume, and that has a session if its
        CLI needs one, can be continued: a crash or a stop loses nothing."""
        if (live := self.core.run(parent_id)) is not None:
            held = self._held(parent_id)
            how = "send it a message" if held and held.agent.two_way else "wait for it"
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
        directory = await self._directories.resolve(parent.cwd)  # off the loop, as a launch's
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
            format="text" if parent.terminal else agent.format,
            parent=parent.id,
            session_id=parent.session_id,  # the same session, resumed
            worktree=tree,
            terminal=parent.terminal,
        )
        return await self._admit(run, agent, config, parent)

    async def _admit(
        self, run: Run, agent: AgentDef, config: Catalog, parent: Run | None = None
    ) -> Run:
        # From here to the core's answer nothing awaits: admission is atomic.
        self.core.max_concurrent = config.settings.max_concurrent
        heard = functools.partial(self.core.heard, run.id)
        terminal = None
        if run.terminal:
            # On a terminal it talks to whoever types: no session on stdin (aios.agents.output).
            agent = replace(agent, approvals="never")
            terminal = LiveTerminal(run.id)
        output = Output(run.id, agent, self.store, self.bus, heard=heard, terminal=terminal)
        held = Held.starting(agent, output, terminal, parent)
        try:
            effects = self.core.launch(run, policy(agent, terminal=run.terminal), held)
        except BaseException:
            self.isolation.abandon(run.id, run.worktree)  # a worktree made for it goes
            raise
        await self._apply(effects)
        first = effects[0]
        assert isinstance(first, Changed)
        return first.run  # as created: the live record moves on as soon as it is admitted

    # -- two-way sessions (aios.agents.conversation) ---------------------------------------------

    async def message(self, run_id: str, text: str) -> Run:
        await self.conversations.message(run_id, text)
        return await self._current(run_id)

    async def decide(
        self, run_id: str, approval_id: str, allow: bool, message: str = "", always: bool = False
    ) -> Run:
        await self.conversations.decide(run_id, approval_id, allow, message, always)
        return await self._current(run_id)

    async def finish(self, run_id: str) -> Run:
        await self.conversations.finish(run_id)
        return await self._current(run_id)

    async def _current(self, run_id: str) -> Run:
        run = await self.get(run_id)
        if run is None:
            raise WrongRunState(f"run {run_id} no longer exists")
        return run

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
        await self._apply(self.core.stop(run_id))
        return await self._current(run_id)

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
        self.recorder.publish_summary()

    async def get(self, run_id: str) -> Run | None:
        return self.core.run(run_id) or await self.store.get(run_id)

    async def list(self, **query: Any) -> list[Run]:
        runs = await self.store.list(**query)
        # The live copy carries the resource figures that history does not.
        return [self.core.run(r.id) or r for r in runs]

    async def summary(self) -> dict[str, int]:
        return self.store.summary()

    # -- carrying out what the core decided ------------------------------------------------------

    def _carry_out(self, effect: Effect) -> None:
        """The shell's part of an effect that is not a record, once its step's runs are saved.
        The core may have moved on meanwhile (a run told to stop at shutdown exited and was
        released by a later step): what was meant for a run no longer live is moot."""
        if isinstance(effect, Spawn | Terminate | Schedule | Probe):
            held = self._held(effect.run_id)
            if held is not None:
                self._act_on(effect, held)
        elif isinstance(effect, Answer):
            self._tasks.spawn(self.conversations.answer(effect), f"answer {effect.run_id}")
        elif isinstance(effect, Released):
            ended = effect.attached
            assert isinstance(ended, Held)
            for timer in ended.timers.values():
                timer.cancel()
            if ended.terminal is not None:
                self.screens.ended(effect.run, ended.terminal)
            self.isolation.ended(effect.run)
            if not self.core.live_ids:
                memory.trim_later()  # the last run ended: what the runs freed goes back

    def _act_on(self, effect: Spawn | Terminate | Schedule | Probe, held: Held) -> None:
        if isinstance(effect, Probe):
            self._tasks.spawn(self.attempts.probe(effect.run_id, held), f"probe {effect.run_id}")
        elif isinstance(effect, Spawn):
            task = self._tasks.spawn(self.attempts.run(effect.run_id, held), f"run {effect.run_id}")
            self._attempts[effect.run_id] = task
            task.add_done_callback(lambda t: self._forget_attempt(effect.run_id, t))
        elif isinstance(effect, Terminate):
            if held.process is not None:
                self._tasks.spawn(self._stop(effect.run_id, held), f"stop {effect.run_id}")
        else:
            self.attempts.schedule(effect, held)

    async def _stop(self, run_id: str, held: Held) -> None:
        await self.conversations.interrupt(run_id, held)  # a session may end its turn cleanly
        if (process := held.process) is not None:
            await process.stop(held.agent.stop_timeout)

    # -- terminals (aios.agents.terminals) -------------------------------------------------------

    def terminal(self, run_id: str) -> LiveTerminal | None:
        """A live terminal run's terminal."""
        held = self._held(run_id)
        return held.terminal if held is not None else None

    def _held(self, run_id: str) -> Held | None:
        """What the shell attached to a live run (the core's registry is the only one)."""
        held = self.core.attached(run_id)
        return held if isinstance(held, Held) else None

    def _holding(self) -> tuple[tuple[str, Held], ...]:
        """Every live run and what the shell holds for it, as they are now."""
        pairs = ((run_id, self._held(run_id)) for run_id in self.core.live_ids)
        return tuple((run_id, held) for run_id, held in pairs if held is not None)

    def _forget_attempt(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self._attempts.get(run_id) is task:
            del self._attempts[run_id]

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
            self.recorder.publish_summary()

    async def _amend(self, run: Run, **changes: Any) -> None:
        """A change to a run that has ended (what happened to its worktree, its changes found
        after a restart): the core makes the record, the recorder writes it where it is."""
        await self._apply(self.core.amend(run, **changes))

    async def _recover(self, interrupted: Sequence[Run]) -> None:
        await self.isolation.recover(interrupted)
        await self.isolation.prune()


def resolve_cwd(requested: str | None) -> Path:
    try:
        return workdir.resolve(requested)
    except workdir.WorkdirError as exc:
        raise InvalidLaunch(str(exc)) from exc
