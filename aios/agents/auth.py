"""Whether each agent's CLI is logged in, as the CLI itself tells (aios.agents.formats).

A check may run the CLI (``claude auth status``) and take a second, so checks run on threads,
their answers are remembered for ``TTL`` seconds, and nothing waits for them for long: a launch
never does, and a listing waits at most ``wait`` seconds before it says "unknown".
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aios.agents.definitions import AgentDef
from aios.agents.formats import AuthState, Login
from aios.tasks import TaskSet

log = logging.getLogger("aios.auth")

TTL = 300.0  # seconds an answer is trusted: logging in or out is rare, and a re-check is cheap
WAIT = 2.0  # seconds a listing waits for checks under way


@dataclass
class _Answer:
    login: Login
    at: float


class AuthChecks:
    def __init__(self, tasks: TaskSet, *, ttl: float = TTL) -> None:
        self._tasks = tasks
        self._ttl = ttl
        self._answers: dict[tuple[str, ...], _Answer] = {}
        self._checking: dict[tuple[str, ...], asyncio.Task[None]] = {}

    async def states(
        self, agents: Iterable[AgentDef], *, wait: float = WAIT, start: bool = True
    ) -> dict[str, Login]:
        """Each agent's state and what its check said of it (only agents whose format can
        tell): what is known now, after starting checks for what is stale (unless not to
        ``start`` any) and waiting up to ``wait`` seconds for them."""
        keys = {agent.name: self._check(agent, start) for agent in agents}
        running = [self._checking[key] for key in keys.values() if key in self._checking]
        if running and wait > 0:
            await asyncio.wait(running, timeout=wait)
        return {
            name: (answer.login if (answer := self._answers.get(key)) else Login(AuthState.UNKNOWN))
            for name, key in keys.items()
            if key
        }

    def _check(self, agent: AgentDef, start: bool = True) -> tuple[str, ...]:
        check = agent.output.auth
        if check is None:
            return ()
        env = {**os.environ, **agent.env}
        # The agent's env may hold API keys: the key holds only a hash of it.
        key = (agent.name, agent.executable(), str(hash(frozenset(agent.env.items()))))
        answer = self._answers.get(key)
        fresh = answer is not None and time.monotonic() - answer.at < self._ttl
        if start and not fresh and key not in self._checking:
            task = self._tasks.spawn(self._run(key, agent, env), f"auth {agent.name}")
            self._checking[key] = task
        return key

    async def _run(self, key: tuple[str, ...], agent: AgentDef, env: dict[str, str]) -> None:
        check = agent.output.auth
        assert check is not None
        try:
            path = env.get("PATH")
            executable = await asyncio.to_thread(shutil.which, agent.executable(), path=path)
            login = Login(AuthState.UNKNOWN)
            if executable is not None:
                try:
                    answer = await asyncio.to_thread(check, executable, env)
                    login = answer if isinstance(answer, Login) else Login(answer)
                except Exception:  # a check must not raise; if one does, we know nothing
                    log.exception("the login check of %s failed", agent.name)
            self._answers[key] = _Answer(login, time.monotonic())
        finally:
            self._checking.pop(key, None)
