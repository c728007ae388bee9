"""The shell's side of two-way sessions (``approvals = "ask"``): what the user says to a live
agent (messages, answers, done, an interrupt before a stop). The opening and the outbox are
written by ``aios.agents.attempt``, which starts and reads the agent.

What to write is the format's reducer's to say (``Reducer.open``, ``say``, ``reply``,
``interrupt``, and the ``outbox`` a handshake or a held message fills); this module only writes
it, in order, to the agent's stdin. Everything reaches the agent in the order it was given
(``Held.writing``), and before its input closes. Whether a request is pending, and what the run
record says meanwhile, is the lifecycle core's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aios.agents.attempt import Held, close_input, write
from aios.agents.effects import Answer, Effect
from aios.agents.errors import InvalidLaunch, WrongRunState
from aios.agents.formats.base import Reducer
from aios.agents.lifecycle import Lifecycle
from aios.agents.process import AgentInputError

log = logging.getLogger("aios.supervisor")

Apply = Callable[[Sequence[Effect]], Awaitable[None]]


class Conversations:
    def __init__(
        self,
        core: Lifecycle,
        apply: Apply,
        publish: Callable[[str, Held], Awaitable[None]],
    ) -> None:
        self.core = core
        self._apply = apply
        self._publish = publish  # a run's output and what it said, now (to the core)

    async def message(self, run_id: str, text: str) -> None:
        """A follow-up prompt for a live two-way session: it goes to the running agent."""
        if not text.strip():
            raise InvalidLaunch("a message needs some text")
        held, reducer = self._session(run_id)
        lines = reducer.say(text)
        # A new turn: whatever it waited for is over. Said before the write, never after: the
        # agent's whole turn may be read while the write awaits, and its end must stand.
        reducer.knowledge.working()
        await self._write(run_id, held, lines)
        await self._publish(run_id, held)

    async def decide(
        self, run_id: str, approval_id: str, allow: bool, message: str = "", always: bool = False
    ) -> None:
        """Answer a pending request. Only a pending id can be decided; deciding one again is
        harmless (nothing is sent twice)."""
        self._session(run_id)
        await self._apply(self.core.decide(run_id, approval_id, allow, message, always=always))

    async def finish(self, run_id: str) -> None:
        """The user is done with a session: its input closes, and the agent ends (or, where the
        reducer says so, it writes what ends the session instead: ``Reducer.finish``)."""
        held, reducer = self._session(run_id)
        instead = reducer.finish()
        if instead is not None:
            await self._write(run_id, held, instead)
            await self._publish(run_id, held)  # a request it withdrew
            return
        await close_input(held)  # after the answers and messages given before

    async def answer(self, effect: Answer) -> None:
        """Write the core's answer to a request (the user's, or a timeout's) to the agent."""
        held = self.core.attached(effect.run_id)
        if not isinstance(held, Held) or (reducer := held.output.reducer) is None:
            return
        lines = reducer.reply(effect.approval_id, effect.allow, effect.message, effect.always)
        try:
            await self._write(effect.run_id, held, lines)
        except WrongRunState as exc:  # it exited meanwhile: its output says why
            log.warning("answering %s: %s", effect.approval_id, exc)

    async def interrupt(self, run_id: str, held: Held) -> None:
        """Before a stop's signals: ask a session's agent to end its turn (best effort)."""
        reducer = held.output.reducer
        if not held.agent.two_way or reducer is None:
            return
        try:
            await write(held, reducer.interrupt())
        except AgentInputError as exc:
            log.debug("run %s: no interrupt: %s", run_id, exc)

    def _session(self, run_id: str) -> tuple[Held, Reducer]:
        held = self.core.attached(run_id)
        run = self.core.run(run_id)
        if not isinstance(held, Held) or run is None:
            raise WrongRunState(f"run {run_id} has ended: continue it instead")
        if not held.agent.two_way or held.output.reducer is None:
            raise WrongRunState(f'run {run_id} is not a two-way session (approvals = "ask")')
        if held.process is None:
            raise WrongRunState(f"run {run_id} is {run.state}: its agent is not running")
        return held, held.output.reducer

    async def _write(self, run_id: str, held: Held, lines: list[str]) -> None:
        try:
            await write(held, lines)
        except AgentInputError as exc:
            raise WrongRunState(f"run {run_id}: {exc}") from exc
