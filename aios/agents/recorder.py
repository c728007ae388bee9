"""The one path from the lifecycle core's decisions to history and to the event bus.

Every step of the core (the effects one event produced) goes through :meth:`Recorder.apply`,
which persists each run snapshot the step made and only then publishes it, in the order the core
made them: nothing is ever announced that history does not hold. The effects that are not
records (spawn, terminate, timers, answers, a released run) are handed back to the shell, in the
same order, once their step's runs are saved.

Steps are queued, in order, for one committer task. While it waits for a commit, the steps that
arrive meanwhile (other runs starting and ending) wait too, and then go to the store's thread
together, in one transaction: a group commit, one trip for many.

History failing (``StoreUnavailable``) stops nothing: memory is the truth meanwhile, the steps
are carried out and published all the same, and the store keeps what it could not write and
writes it when it can.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from aios.agents.effects import Amended, Attention, Changed, Effect, Released, Sampled
from aios.events import EventBus
from aios.runs import Run
from aios.store import Store
from aios.store_errors import StoreUnavailable
from aios.tasks import TaskSet

log = logging.getLogger("aios.supervisor")

Step = tuple[Sequence[Effect], asyncio.Future[None]]


class Recorder:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        tasks: TaskSet,
        *,
        carry_out: Callable[[Effect], None],
        pruned: Callable[[Iterable[Run]], None],
    ) -> None:
        self.store = store
        self.bus = bus
        self._tasks = tasks
        self._carry_out = carry_out  # the shell's part of an effect that is not a record
        self._pruned = pruned  # runs history pruned to make room
        self._pending: deque[Step] = deque()
        self._committer: asyncio.Task[None] | None = None

    async def apply(self, effects: Sequence[Effect]) -> None:
        """Carry out a step of the core: persist the runs it changed, then publish them and do
        the rest, in the order the core made them. Returns once done; raises what failed.
        Callers ask the core and call this in one step (no await between)."""
        if not effects:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((effects, done))
        if self._committer is None or self._committer.done():
            self._committer = self._tasks.spawn(self._commit_pending(), "commit")
        await done

    def publish_summary(self) -> None:
        self.bus.publish("summary", self.store.summary())

    async def _commit_pending(self) -> None:
        steps: list[Step] = []
        try:
            while self._pending:
                steps = list(self._pending)
                self._pending.clear()
                effects = [effect for step, _ in steps for effect in step]
                try:
                    kept = await self._persist(effects)
                except Exception as exc:
                    for _, done in steps:
                        _settle(done, exc)
                    continue
                moved = False
                for step, done in steps:
                    try:
                        moved = self._publish(step, kept) or moved
                    except Exception as exc:
                        _settle(done, exc)
                    else:
                        _settle(done, None)
                if moved:
                    self.publish_summary()
        finally:
            # Cancelled (shutdown) with steps not done: their callers must not wait for ever.
            for _, done in [*steps, *self._pending]:
                _settle(done, RuntimeError("the supervisor stopped"))

    async def _persist(self, effects: Sequence[Effect]) -> set[int]:
        """Write the steps' records; the ids (``id()``) of the amendments that history kept."""
        try:
            # Every run these steps changed, in one transaction, before any of them is
            # published; the logs of the runs that ended are closed in the same trip.
            pruned = await self.store.save_many(
                [e.run for e in effects if isinstance(e, Changed)],
                close_logs=[e.run_id for e in effects if isinstance(e, Released)],
            )
        except StoreUnavailable:
            # The store keeps these runs and writes them when it can, and has said why once.
            pruned = []
        if pruned:
            self._pruned(pruned)
        kept: set[int] = set()
        for effect in effects:
            if isinstance(effect, Amended):
                try:  # never bringing back a run deleted meanwhile
                    if await self.store.update(effect.run):
                        kept.add(id(effect))
                except StoreUnavailable as exc:  # kept in memory, written when it can
                    log.warning("run %s: its change is not written yet: %s", effect.run.id, exc)
                    kept.add(id(effect))
        return kept

    def _publish(self, effects: Sequence[Effect], kept: set[int]) -> bool:
        """Publish and do one step's effects (its runs are saved); whether a run changed state."""
        moved = False
        for effect in effects:
            if isinstance(effect, Changed):
                self.bus.publish("run", effect.run.to_json())
                moved = moved or effect.source is not effect.run.state
            elif isinstance(effect, Amended):
                if id(effect) in kept:
                    self.bus.publish("run", effect.run.to_json())
            elif isinstance(effect, Attention):
                self.bus.publish("attention", effect.to_json())
            elif isinstance(effect, Sampled):
                run = effect.run
                stats = {"run": run.id, "cpu_percent": run.cpu_percent, "rss_bytes": run.rss_bytes}
                self.bus.publish("stats", stats)
            else:
                self._carry_out(effect)
        return moved


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    """Tell a step's caller how it went, unless the caller has gone (its future cancelled):
    the step is carried out all the same."""
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
