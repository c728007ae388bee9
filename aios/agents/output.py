"""One live run's output: read it, keep it, and learn from it what the run is doing.

For a ``text`` agent the output is one merged stream, kept byte for byte in the run's log (and,
when its format has a reducer, also read line by line for what it says; in a two-way session
its reducer also sees the unterminated last line after each read, where a CLI that asks with
``input()`` leaves its question, and what AIOS writes to it is echoed into the log as a terminal
would show it). For a structured agent
(JSON lines on stdout) stdout and stderr are read apart: each stdout line is kept as it came in
the run's raw events, and what the format's reducer makes of both streams - readable text, not
walls of JSON - is the log a person reads.

Output is always drained, whatever happens to the disk: a write that fails for lack of space
is dropped and counted by the store (and said in the log when space returns); any other failure
to write is logged once and the output read on, so the agent never blocks on a pipe nobody reads.

Memory stays bounded whatever an agent prints: lines are capped (``capture.MAX_LINE``), and the
text waiting for the next ``log`` event keeps only its newest ``LOG_EVENT_MAX`` bytes (the log
file has all of it). Reading waits for the disk write, so a flooding agent blocks on its pipe.

What the output says about the run is not written here: :meth:`Output.observation` hands it to
the lifecycle core, the only writer of run records, as an ``Observation``; every read is
reported to the core as it happens (``heard``), for its stall timer.

A terminal run's output (``terminal``: its pseudo-terminal, ``aios.agents.terminals``) is one
stream, kept as it came like a ``text`` agent's, ANSI included, and fed to its screen; no
format's reducer reads it: a full-screen program's redraws are not lines of anything.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aios.agents import learning
from aios.agents.capture import LineSplitter
from aios.agents.definitions import AgentDef
from aios.agents.effects import Observation, Outcome
from aios.agents.formats import Reducer
from aios.agents.formats.base import style
from aios.agents.process import AgentInputError, AgentProcess
from aios.agents.terminals import LiveTerminal
from aios.events import EventBus
from aios.store import Store
from aios.store_errors import StoreError
from aios.store_logs import Stream

log = logging.getLogger("aios.output")

LOG_EVENT_MAX = 64 * 1024  # a flood keeps only the newest bytes of a window; the file has all

Reader = Callable[[], Awaitable[bytes]]


def _nothing() -> None:
    pass


@dataclass
class Output:
    run_id: str
    agent: AgentDef
    store: Store
    bus: EventBus
    fresh: bool = False  # output was read since the last observation
    offset: int = 0  # bytes of log written so far
    pending: bytearray = field(default_factory=bytearray)
    skipped: int = 0
    reducer: Reducer | None = None
    overlong: int = 0
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    heard: Callable[[], None] = _nothing  # told of every read (the core's stall timer)
    # Told when what was read should not wait for the next periodic flush: an attempt's first
    # output (someone watching a launch waits for it) and a request for the user's approval.
    urgent: Callable[[], None] = _nothing
    write_failed: bool = False  # a write failed (not for lack of space), logged once
    # Two-way: writes lines to the agent's stdin (set once its session is open).
    send: Callable[[list[str]], Awaitable[None]] | None = None
    # Two-way: closes the agent's stdin (the reducer said the conversation ``ended``).
    close: Callable[[], Awaitable[None]] | None = None
    terminal: LiveTerminal | None = None  # a terminal run's screen and viewers

    def new_attempt(self) -> None:
        self.fresh = False
        self.send = self.close = None
        if self.terminal is not None:
            self.reducer = None
            return
        output = self.agent.output
        factory = output.reducer
        if self.agent.two_way and output.two_way is not None and output.two_way.reducer:
            factory = output.two_way.reducer
        self.reducer = factory() if factory is not None else None
        if self.reducer is not None:
            self.reducer.two_way = self.agent.two_way

    # -- reading ------------------------------------------------------------------------------

    async def read(self, process: AgentProcess) -> None:
        """Read until every output stream of ``process`` has ended (or the pipes are closed)."""
        if self.agent.output.structured and self.terminal is None:
            await asyncio.gather(
                self._read_lines(process.read, stderr=False),
                self._read_lines(process.read_stderr, stderr=True),
            )
        else:
            await self._read_text(process)

    async def _read_text(self, process: AgentProcess) -> None:
        reducer = self.reducer
        splitter = LineSplitter() if reducer is not None else None
        # A conversation on stdin also waits on an unterminated line (a question): its reducer
        # sees that tail after each read, and may answer at once (its outbox).
        conversing = reducer is not None and reducer.two_way
        terminal = self.terminal
        while chunk := await process.read():
            self._heard()
            if terminal is not None:
                terminal.feed(chunk)
            await self._append(chunk)
            if splitter is not None and reducer is not None:
                for line in splitter.feed(chunk):
                    reducer.stdout(line)  # the raw text is the log already
                if conversing:
                    reducer.partial(splitter.tail)
                    if reducer.outbox and self.send is not None:
                        await self._send(reducer.take_outbox())
                if reducer.knowledge.asked:
                    self.urgent()
        if splitter is not None and reducer is not None:
            for line in splitter.flush():
                reducer.stdout(line)
            self.overlong += splitter.overlong

    def _heard(self) -> None:
        self.fresh = True
        self.heard()

    async def _read_lines(self, read: Reader, *, stderr: bool) -> None:
        splitter = LineSplitter()
        while chunk := await read():
            self._heard()
            await self._lines(splitter.feed(chunk), stderr=stderr)
        await self._lines(splitter.flush(), stderr=stderr)
        self.overlong += splitter.overlong

    async def _lines(self, lines: list[str], *, stderr: bool) -> None:
        reducer = self.reducer
        if reducer is None:  # a structured format always has one; a bare stream shows as is
            text = "".join(line + "\n" for line in lines)
        elif stderr:
            if lines:  # kept raw beside the styled log: what the CLI said, as it said it
                await self._keep("".join(line + "\n" for line in lines).encode(), "stderr")
            text = "".join(reducer.stderr(line) for line in lines)
        else:
            if lines:
                raw = "".join(line + "\n" for line in lines)
                await self._keep(raw.encode(), "events")
            text = "".join(reducer.stdout(line) for line in lines)
            if reducer.outbox and self.send is not None:
                await self._send(reducer.take_outbox())
            if reducer.ended and self.close is not None:
                close, self.close = self.close, None
                await close()
        if text:
            await self._append(text.encode())
        if reducer is not None and reducer.knowledge.asked:
            self.urgent()

    async def _send(self, lines: list[str]) -> None:
        assert self.send is not None
        try:
            await self.send(lines)
        except AgentInputError as exc:  # it is ending: its output says why
            log.warning("run %s: could not answer its output: %s", self.run_id, exc)

    async def echo(self, lines: list[str]) -> None:
        """What was written to a ``text`` agent's stdin, into its log as a terminal would show
        it (after the question or prompt it answers): the transcript reads as the session
        went. A structured agent's input is its protocol, not text for a person."""
        if lines and not self.agent.output.structured:
            await self._append("".join(line + "\n" for line in lines).encode())

    async def note(self, text: str) -> None:
        """A line of AIOS's own in the run's log, among what the agent said."""
        await self._append((style.dim(f"[aios: {text}]") + "\n").encode())

    async def _append(self, data: bytes) -> None:
        # The backpressure: append_log waits once two writes are queued, so a flooding agent
        # blocks on its pipe instead of our memory growing.
        first = self.offset == 0 and not self.pending
        await self._keep(data, "log")
        self.offset += len(data)
        if len(data) >= LOG_EVENT_MAX:  # only its tail can be in the next event: no copy of all
            self.skipped += len(self.pending) + len(data) - LOG_EVENT_MAX
            self.pending[:] = memoryview(data)[-LOG_EVENT_MAX:]
        else:
            self.pending += data
        if len(self.pending) > LOG_EVENT_MAX:
            cut = len(self.pending) - LOG_EVENT_MAX
            del self.pending[:cut]
            self.skipped += cut
        if first:
            self.urgent()

    async def _keep(self, data: bytes, stream: Stream) -> None:
        try:
            await self.store.append_log(self.run_id, data, stream)
        except StoreError as exc:
            if not self.write_failed:
                self.write_failed = True
                log.error("run %s: its output cannot be kept, reading on: %s", self.run_id, exc)

    # -- what the run learns ------------------------------------------------------------------

    def observation(self, *, anyway: bool = False) -> Observation | None:
        """What the output has said, when anything was read since the last call (or
        ``anyway``): the reducer's facts as they stand, and the requests made or withdrawn
        meanwhile. Any output at all means the run is not silent."""
        reducer = self.reducer
        asked, withdrawn = reducer.knowledge.drain() if reducer is not None else ((), ())
        if not (self.fresh or anyway or asked or withdrawn):
            return None
        self.fresh = False
        if reducer is None:
            return Observation()
        k = reducer.knowledge
        waiting = k.activity in learning.HINTED
        return Observation(
            activity=k.activity,
            activity_detail=k.activity_detail,
            hint=self.agent.output.hint(k, None) if waiting else None,
            session_id=k.session_id,
            model=k.model,
            tokens=k.tokens,
            cost_usd=k.cost_usd,
            num_turns=k.num_turns,
            denials=k.denials,
            asked=asked,
            withdrawn=withdrawn,
        )

    async def outcome(self, exit_code: int) -> Outcome:
        """At the end of an attempt: what the output said about how it went (and what it left
        unsaid, written to the log)."""
        if self.reducer is None:
            return Outcome()
        self.reducer.exited(exit_code)
        text = self.reducer.ending()
        knowledge = self.reducer.knowledge
        unread = knowledge.malformed + self.overlong
        if unread:
            what = "line" if unread == 1 else "lines"
            text += style.dim(f"[aios: {unread} {what} of output could not be read]") + "\n"
        if text:
            await self._append(text.encode())
        self.fresh = True  # the end is news too
        # Ending (or stopped) while offline or waiting for a login is failing for that reason,
        # even with exit 0 (codex app-server ends so on a stop's SIGTERM).
        wait = learning.KIND_OF_WAIT.get(knowledge.activity) if knowledge.activity else None
        kind = knowledge.failure_kind or wait
        failed = exit_code != 0 or knowledge.failure is not None or kind is not None
        hint = self.agent.output.hint(knowledge, exit_code) if failed else None
        return Outcome(knowledge.failure, kind, hint, activity=knowledge.activity)

    # -- publishing ---------------------------------------------------------------------------

    def flush_log(self) -> None:
        """Publish what was appended since the last call as one ``log`` event."""
        if not self.pending:
            return
        data = bytes(self.pending)
        text = self.decoder.decode(data)
        self.bus.publish(
            "log",
            {
                "run": self.run_id,
                "offset": self.offset - len(data),
                "skipped": self.skipped,
                "text": text,
            },
        )
        self.pending.clear()
        self.skipped = 0
