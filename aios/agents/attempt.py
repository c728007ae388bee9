"""One start of an agent, for the supervisor: spawn it, follow it, read it, end it.

Part of the shell: it reports what it sees to the lifecycle core (spawned, what the output said,
exited) and carries out nothing itself but the process work; the core decides what each report
means for the run, and its answers go to history through the supervisor's recorder.

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
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from aios.agents.definitions import AgentDef, RestartPolicy
from aios.agents.effects import Effect, Policy, Schedule
from aios.agents.formats.base import SessionStart
from aios.agents.input_wait import reads_terminal
from aios.agents.isolation import Isolation
from aios.agents.lifecycle import Lifecycle
from aios.agents.output import Output
from aios.agents.process import AgentInputError, AgentProcess
from aios.agents.spawning import SpawnError
from aios.agents.terminals import LiveTerminal
from aios.agents.watchdog import Watchdog
from aios.runs import Run
from aios.store import Store
from aios.tasks import TaskSet, cancel

log = logging.getLogger("aios.supervisor")

LOG_FLUSH_INTERVAL = 0.075  # coalesce output into one `log` event per run per 75 ms
# Once the leader is gone and its group stopped, the reader has this long to reach the end of
# the output before the pipe is closed (a child that escaped the group may hold it for ever).
DRAIN_TIMEOUT = 1.0
# What a terminal run's TERM says: what the dashboard's terminal (xterm.js) and the screen model
# both understand.
TERM = "xterm-256color"
# Seconds a terminal run must be quiet before its program is looked at: blocked reading its
# terminal then means it waits for the user (awaiting_input; aios.agents.input_wait).
INPUT_QUIET = 1.5
# A program that waits for input this soon after a viewer typed into it calls for nobody: the
# one typing is there (a conversation in the terminal would call after every answer).
ATTENDED = 30.0

Spawner = Callable[..., Awaitable[AgentProcess]]
Apply = Callable[[Sequence[Effect]], Awaitable[None]]


@dataclass
class Held:
    """What the shell holds for a live run: its agent, output, process and timers. Whether a run
    is live, and its record, are the core's alone."""

    agent: AgentDef
    output: Output
    process: AgentProcess | None = None
    timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict)  # token → its timer
    # The session this run resumes ("" for a CLI that needs no id); None: a new one.
    resume: str | None = None
    # Answers and messages reach the agent in the order they were given, before its input closes.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    # A terminal run's terminal (its screen and viewers); None: its output is piped.
    terminal: LiveTerminal | None = None
    # Not before this time (epoch seconds) does a two-way session open (session_opens_at).
    opens_at: float | None = None

    @classmethod
    def starting(
        cls, agent: AgentDef, output: Output, terminal: LiveTerminal | None, parent: Run | None
    ) -> Held:
        """What the shell holds for a new run; a continuation resumes ``parent``'s session."""
        if parent is None:
            return cls(agent, output, terminal=terminal)
        resume, opens_at = parent.session_id or "", session_opens_at(agent, parent)
        return cls(agent, output, resume=resume, terminal=terminal, opens_at=opens_at)


def session_opens_at(agent: AgentDef, parent: Run) -> float | None:
    """When a continuation of ``parent`` may open its session; None: at once. A CLI that loses
    a session loaded in the minute it was last written (``TwoWay.loads_in_a_later_minute``)
    waits for the minute after the parent ended: the session was written by then, at the latest."""
    two_way = agent.output.two_way
    if not (agent.two_way and two_way and two_way.loads_in_a_later_minute and parent.ended_at):
        return None
    return (parent.ended_at // 60 + 1) * 60


@dataclass
class Attempts:
    core: Lifecycle
    apply: Apply
    store: Store
    watchdog: Watchdog
    isolation: Isolation
    tasks: TaskSet
    spawn: Spawner
    holding: Callable[[], Iterable[tuple[str, Held]]]  # the live runs and what the shell holds
    ready: asyncio.Future[None] | None = None  # the watchdog, started (start_watchdog)

    def start_watchdog(self) -> None:
        """The watchdog (another interpreter) starts on a thread, and nothing waits for it but
        the first spawn. No agent is ever started before it is ready; if it cannot start, no
        agent is."""
        self.ready = asyncio.get_running_loop().run_in_executor(None, self.watchdog.start)
        self.ready.add_done_callback(_report_watchdog)

    async def sample_stats(self, interval: float) -> None:
        """Every ``interval``, each live process's CPU and memory, told to the core."""
        while True:
            await asyncio.sleep(interval)
            for run_id, held in self.holding():
                process = held.process
                if process is None:
                    continue
                try:
                    sample = await asyncio.to_thread(process.sample)
                    if sample is not None:
                        await self.apply(self.core.sampled(run_id, *sample))
                except Exception:  # one process's figures are not worth every run's
                    log.exception("sampling run %s failed", run_id)

    async def run(self, run_id: str, held: Held) -> None:
        agent, output = held.agent, held.output
        try:
            if self.ready is not None:
                await asyncio.shield(self.ready)  # raises if it could not start
            output.new_attempt()
            run = self._now(run_id)
            await self.isolation.starting(run)
            terminal = held.terminal
            extra = {} if terminal is None else {"terminal": terminal.size}
            try:
                process = await self.spawn(
                    agent.argv(
                        run.prompt,
                        run.permission,
                        resume=held.resume,
                        terminal=terminal is not None,
                    ),
                    cwd=self.isolation.directory(run),
                    env=agent_environment(agent, run, terminal=terminal is not None),
                    merge_stderr=not agent.output.structured,
                    stdin=agent.two_way,
                    **extra,
                )
            except SpawnError as exc:
                await self.apply(self.core.spawn_failed(run_id, str(exc)))
                return
            code = await self._watch(run_id, held, process)
            changes = await self.isolation.record(self._now(run_id))  # in the record that ends it
            outcome = await output.outcome(code)
            await self.store.settle_log(run_id)
            if lost := self.store.lost_output(run_id):
                outcome = replace(outcome, lost=lost)
            await self.publish_output(run_id, held)
            await self.apply(self.core.exited(run_id, code, outcome, changes))
        except Exception as exc:
            log.exception("supervising run %s failed", run_id)
            await self.apply(self.core.crashed(run_id, f"internal error: {exc}"))
        # The log is closed when the run ends (``Released``, in the recorder).

    def _now(self, run_id: str) -> Run:
        run = self.core.run(run_id)
        if run is None:
            raise RuntimeError(f"run {run_id} ended under its attempt")
        return run

    async def _watch(self, run_id: str, held: Held, process: AgentProcess) -> int:
        """Follow the process until its leader exits and what it left is gone; its exit code."""
        held.process = process
        if held.terminal is not None:
            held.terminal.started(process)
            # A chat with no option for a first message (aider's): the prompt is typed in, and
            # waits in the terminal until the chat reads it (docs/agents.md, "In a terminal").
            if (typed := held.agent.typed_prompt(self._now(run_id).prompt)) is not None:
                process.type(typed.encode())
        self.watchdog.register(process.pgid)
        try:
            await self.apply(
                self.core.spawned(run_id, pid=process.pid, pid_started_at=process.create_time)
            )
            reader = self.tasks.spawn(self._read_output(run_id, held, process), f"output {run_id}")
            if held.agent.two_way:
                await self._open_session(run_id, held)
            code = await process.wait()
            # The leader is gone; what it left behind goes the way of a stopped run.
            try:
                await process.stop(held.agent.stop_timeout)
            except TimeoutError:
                log.exception("run %s: members of its group survived SIGKILL", run_id)
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
            held.process = None
            if held.terminal is not None:
                held.terminal.stopped()

    async def _open_session(self, run_id: str, held: Held) -> None:
        """A two-way session starts with what its format writes first (a handshake, the
        prompt); what its answers call for next goes from the output's outbox."""
        reducer, run = held.output.reducer, self._now(run_id)
        if reducer is None:
            return
        directory = str(self.isolation.directory(run))
        start = SessionStart(run.prompt, directory, run.permission, held.resume)
        held.output.send = functools.partial(write, held)
        held.output.close = functools.partial(close_input, held)
        if held.opens_at is not None and not await self._hold_session(held, held.opens_at):
            return  # it ended (a stop) while it waited
        try:
            await write(held, reducer.open(start))
        except AgentInputError as exc:  # it exited at once: its output says why
            log.warning("run %s: could not start the conversation: %s", run_id, exc)

    @staticmethod
    async def _hold_session(held: Held, opens_at: float) -> bool:
        """Wait, saying so in the log, until ``opens_at`` or the process's end; whether it is
        still there to talk to."""
        process, delay = held.process, opens_at - time.time()
        if process is None:
            return False
        if delay <= 0:
            return True
        at = time.strftime("%H:%M", time.gmtime(opens_at))
        cli = held.agent.label or held.agent.name
        await held.output.note(
            f"the session opens at {at} UTC, in {delay:.0f} s: {cli} loses a session resumed "
            "in the minute it was last written"
        )
        try:
            await asyncio.wait_for(process.wait(), max(0.0, opens_at - time.time()))
        except TimeoutError:
            return True
        return False

    async def _read_output(self, run_id: str, held: Held, process: AgentProcess) -> None:
        flusher = self.tasks.spawn(self._flush_periodically(run_id, held), f"flush {run_id}")
        try:
            await held.output.read(process)
        finally:
            flusher.cancel()

    async def _flush_periodically(self, run_id: str, held: Held) -> None:
        """Every ``LOG_FLUSH_INTERVAL``, or at once when the output says something the user
        waits for (its first bytes, a request for approval)."""
        wake = asyncio.Event()
        held.output.urgent = wake.set
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOG_FLUSH_INTERVAL):
                    await wake.wait()
            wake.clear()
            try:
                await self.publish_output(run_id, held)
            except Exception:  # the next flush may do better; the reader must go on
                log.exception("publishing the output of run %s failed", run_id)

    def schedule(self, timer: Schedule, held: Held) -> None:
        """Set a timer of the core's: a handle on the loop, not a task (most timers of a quick
        run never fire, and are cancelled when it ends)."""
        loop = asyncio.get_running_loop()
        held.timers[timer.token] = loop.call_later(timer.delay, self._fire, timer, held)

    def _fire(self, timer: Schedule, held: Held) -> None:
        held.timers.pop(timer.token, None)
        self.tasks.spawn(self._fired(timer), f"timer {timer.run_id}")

    async def _fired(self, timer: Schedule) -> None:
        # The core is asked and its effects queued in one step, like every other caller.
        await self.apply(self.core.timer_fired(timer.run_id, timer.token))

    async def probe(self, run_id: str, held: Held) -> None:
        """Whether the program is blocked reading its terminal, told to the core."""
        process = held.process
        if process is None or process.tty is None:
            return
        foreground = process.foreground_group()
        reading = foreground is not None and await asyncio.to_thread(
            reads_terminal, process.pid, foreground, process.tty
        )
        terminal = held.terminal
        attended = terminal is not None and terminal.typed_within(ATTENDED)
        await self.apply(self.core.probed(run_id, reading, attended))

    async def publish_now(self, run_id: str, held: Held) -> None:
        await self.publish_output(run_id, held, anyway=True)

    async def publish_output(self, run_id: str, held: Held, *, anyway: bool = False) -> None:
        """The output since the last call as one ``log`` event; what it said, told to the core
        (which persists and publishes what the run learned, and any call for attention)."""
        held.output.flush_log()
        seen = held.output.observation(anyway=anyway)
        if seen is not None:
            # The core is asked and its effects queued in one step, like every other caller.
            await self.apply(self.core.observed(run_id, seen))


async def write(held: Held, lines: list[str]) -> None:
    """Write ``lines`` to a live agent's stdin, after whatever was given before them."""
    if not lines:
        return
    async with held.writing:
        if held.process is None:
            raise AgentInputError("its agent is not running")
        # Into the log first: once written, the agent's answer to it may be read before this
        # task runs again.
        await held.output.echo(lines)
        for line in lines:
            await held.process.write_line(line)


async def close_input(held: Held) -> None:
    """Close a live agent's stdin, after whatever was given before: it ends its session."""
    async with held.writing:
        if held.process is not None:
            held.process.close_input()


def _report_watchdog(started: asyncio.Future[None]) -> None:
    if not started.cancelled() and (exc := started.exception()) is not None:
        log.error("the watchdog could not start, so no agent will be: %s", exc)


def policy(agent: AgentDef, *, terminal: bool = False) -> Policy:
    """The core's rules of timing for a run of ``agent`` (with a terminal or not)."""
    return Policy(
        restart_on_failure=agent.restart is RestartPolicy.ON_FAILURE,
        max_restarts=agent.max_restarts,
        start_seconds=agent.start_seconds,
        stall_after=agent.stall_after,
        approval_timeout=agent.approval_timeout if agent.two_way else 0.0,
        input_quiet=INPUT_QUIET if terminal else 0.0,
    )


def agent_environment(agent: AgentDef, run: Run, *, terminal: bool = False) -> dict[str, str]:
    """The daemon's environment, the agent's own settings, and the run's identity (and, with a
    terminal, ``TERM``: what its terminal understands, unless the agent's settings say).

    The daemon's token lives only in its memory and the runtime file, never in os.environ, so it
    cannot leak here; AIOS_* variables of our own are replaced rather than inherited.
    """
    env: dict[str, str] = {
        k: v for k, v in os.environ.items() if not k.startswith("AIOS_") or k == "AIOS_HOME"
    }
    if terminal:
        env["TERM"] = TERM
        env.pop("COLUMNS", None)  # the terminal's own size is the truth, not an inherited one
        env.pop("LINES", None)
    env.update(agent.env)
    env["AIOS_PROMPT"] = run.prompt
    env["AIOS_RUN_ID"] = run.id
    return env
