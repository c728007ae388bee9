"""A fake shell for the lifecycle core: it carries out the core's effects in memory, with a fake
clock, so the core's rules are tested in microseconds (tests/test_run_lifecycle.py,
tests/test_run_hearing.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, cast

from aios.agents.effects import (
    Amended,
    Answer,
    Attention,
    Changed,
    Effect,
    Policy,
    Probe,
    Released,
    Sampled,
    Schedule,
    Spawn,
    Terminate,
)
from aios.agents.lifecycle import Lifecycle
from aios.runs import Run, RunState


@dataclass
class FakeClock:
    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


class Latest:
    """A run as the shell last heard of it. Records are immutable: the core hands out a new
    snapshot with every change, and this follows them, so a test reads ``run.state`` as the
    shell would see it now."""

    def __init__(self, shell: Shell, run_id: str) -> None:
        self._shell, self.id = shell, run_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shell.latest[self.id], name)


@dataclass
class Shell:
    """Plays the async shell: carries out effects and remembers them, with the fake clock."""

    core: Lifecycle
    clock: FakeClock
    changes: list[Changed] = field(default_factory=list)
    latest: dict[str, Run] = field(default_factory=dict)
    spawns: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    attention: list[Attention] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    amended: list[Run] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    reading: bool = False  # what a probe finds: the program is blocked reading its terminal
    # run -> token -> due: a run may have several timers (start, stall, each request)
    timers: dict[str, dict[int, float]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def do(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            if isinstance(effect, Changed):
                self.changes.append(effect)
                self.latest[effect.run.id] = effect.run
            elif isinstance(effect, Sampled):
                self.latest[effect.run.id] = effect.run
            elif isinstance(effect, Amended):
                self.amended.append(effect.run)
            elif isinstance(effect, Attention):
                self.attention.append(effect)
            elif isinstance(effect, Answer):
                self.answers.append(effect)
            elif isinstance(effect, Spawn):
                self.spawns.append(effect.run_id)
            elif isinstance(effect, Terminate):
                self.terminated.append(effect.run_id)
            elif isinstance(effect, Schedule):
                self.timers.setdefault(effect.run_id, {})[effect.token] = (
                    self.clock.now + effect.delay
                )
            elif isinstance(effect, Probe):  # the real shell looks in /proc on a thread
                self.probes.append(effect.run_id)
                self.do(self.core.probed(effect.run_id, self.reading))
            elif isinstance(effect, Released):
                self.released.append(effect.run_id)
                self.timers.pop(effect.run_id, None)
        return effects

    def due(self, run: Run) -> float:
        """When the run's latest timer falls due."""
        return self.timers[run.id][max(self.timers[run.id])]

    def token(self, run: Run) -> int:
        return max(self.timers[run.id])

    def launch(self, policy: Policy | None = None) -> Run:
        run = Run(id=f"run{next(self.ids):04d}", agent="a", prompt="p", cwd="/")
        self.do(self.core.launch(run, policy or Policy()))
        return cast(Run, Latest(self, run.id))

    def spawned(self, run: Run) -> None:
        self.do(self.core.spawned(run.id, pid=4242, pid_started_at=1.0))

    def exited(self, run: Run, code: int) -> None:
        self.do(self.core.exited(run.id, code))

    def advance(self, seconds: float) -> None:
        """Move the clock on, firing the timers that fall due, in order."""
        target = self.clock.now + seconds
        while due := sorted(
            (when, token, run_id)
            for run_id, timers in self.timers.items()
            for token, when in timers.items()
            if when <= target
        ):
            when, token, run_id = due[0]
            self.clock.now = max(self.clock.now, when)
            del self.timers[run_id][token]
            self.do(self.core.timer_fired(run_id, token))
        self.clock.now = target

    def states(self, run: Run) -> list[RunState]:
        seen: list[RunState] = []
        for change in self.changes:
            if change.run.id == run.id and (not seen or seen[-1] is not change.run.state):
                seen.append(change.run.state)
        return seen
