"""One live run's output: read it, keep it, and learn from it what the run is doing.

For a ``text`` agent the output is one merged stream, kept byte for byte in the run's log (and,
when its format has a reducer, also read line by line for what it says). For a structured agent
(JSON lines on stdout) stdout and stderr are read apart: each stdout line is kept as it came in
the run's raw events, and what the format's reducer makes of both streams - readable text, not
walls of JSON - is the log a person reads.

Output is always drained, whatever happens to the disk: a write that fails for lack of space
is dropped and counted by the store (and said in the log when space returns); any other failure
to write is logged once and the output read on, so the agent never blocks on a pipe nobody reads.

Memory stays bounded whatever an agent prints: lines are capped (``capture.MAX_LINE``), and the
text waiting for the next ``log`` event keeps only its newest ``LOG_EVENT_MAX`` bytes (the log
file has all of it). Reading waits for the disk write, so a flooding agent blocks on its pipe.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aios.agents.capture import LineSplitter
from aios.agents.definitions import AgentDef
from aios.agents.formats import Reducer
from aios.agents.formats.base import style
from aios.agents.lifecycle import Outcome
from aios.agents.process import AgentProcess
from aios.events import EventBus
from aios.runs import ATTENTION_ACTIVITIES, Activity, Approval, Run
from aios.store import Store, StoreError, Stream

log = logging.getLogger("aios.output")

LOG_EVENT_MAX = 64 * 1024  # a flood keeps only the newest bytes of a window; the file has all

# What the reducer learns that is copied onto the run as it is (activity is handled apart).
FACTS = ("session_id", "model", "tokens", "cost_usd", "num_turns", "denials")

Reader = Callable[[], Awaitable[bytes]]


@dataclass
class Attention:
    """Something the user should look at (published as an ``attention`` event)."""

    run: Run
    # needs_login | stalled | offline | awaiting_approval | denials | hidden_failure
    reason: str
    message: str
    approval: Approval | None = None  # for awaiting_approval: what the agent asks to do

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run": self.run.id,
            "agent": self.run.agent,
            "reason": self.reason,
            "message": self.message,
        }
        if self.approval is not None:
            data["approval"] = self.approval.to_json()
        return data


@dataclass
class Output:
    run: Run
    agent: AgentDef
    store: Store
    bus: EventBus
    last_heard: float = 0.0  # monotonic time of the last output, on either stream
    dirty: bool = False  # the run learned something not yet persisted and published
    attention: list[Attention] = field(default_factory=list)
    offset: int = 0  # bytes of log written so far
    pending: bytearray = field(default_factory=bytearray)
    skipped: int = 0
    reducer: Reducer | None = None
    overlong: int = 0
    # Two-way sessions: when each pending request was first seen (monotonic), for its timeout,
    # and the ids already answered (answering one twice is harmless).
    asked: dict[str, float] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    clock: Callable[[], float] = time.monotonic
    write_failed: bool = False  # a write failed (not for lack of space), logged once

    def new_attempt(self, now: float) -> None:
        factory = self.agent.output.reducer
        self.reducer = factory() if factory is not None else None
        if self.reducer is not None:
            self.reducer.two_way = self.agent.two_way
        self.last_heard = now
        self.asked.clear()

    # -- reading ------------------------------------------------------------------------------

    async def read(self, process: AgentProcess, clock: Callable[[], float]) -> None:
        self.clock = clock
        """Read until every output stream of ``process`` has ended (or the pipes are closed)."""
        if self.agent.output.structured:
            await asyncio.gather(
                self._read_lines(process.read, clock, stderr=False),
                self._read_lines(process.read_stderr, clock, stderr=True),
            )
        else:
            await self._read_text(process, clock)

    async def _read_text(self, process: AgentProcess, clock: Callable[[], float]) -> None:
        splitter = LineSplitter() if self.reducer is not None else None
        while chunk := await process.read():
            self.last_heard = clock()
            await self._append(chunk)
            if splitter is not None and self.reducer is not None:
                for line in splitter.feed(chunk):
                    self.reducer.stdout(line)  # the raw text is the log already
            self.learn()
        if splitter is not None and self.reducer is not None:
            for line in splitter.flush():
                self.reducer.stdout(line)
            self.overlong += splitter.overlong
            self.learn()

    async def _read_lines(self, read: Reader, clock: Callable[[], float], *, stderr: bool) -> None:
        splitter = LineSplitter()
        while chunk := await read():
            self.last_heard = clock()
            await self._lines(splitter.feed(chunk), stderr=stderr)
        await self._lines(splitter.flush(), stderr=stderr)
        self.overlong += splitter.overlong

    async def _lines(self, lines: list[str], *, stderr: bool) -> None:
        reducer = self.reducer
        if reducer is None:  # a structured format always has one; a bare stream shows as is
            text = "".join(line + "\n" for line in lines)
        elif stderr:
            text = "".join(reducer.stderr(line) for line in lines)
        else:
            if lines:
                raw = "".join(line + "\n" for line in lines)
                await self._keep(raw.encode(), "events")
            text = "".join(reducer.stdout(line) for line in lines)
        if text:
            await self._append(text.encode())
        self.learn()

    async def _append(self, data: bytes) -> None:
        # The backpressure: append_log waits once two writes are queued, so a flooding agent
        # blocks on its pipe instead of our memory growing.
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

    async def _keep(self, data: bytes, stream: Stream) -> None:
        try:
            await self.store.append_log(self.run.id, data, stream)
        except StoreError as exc:
            if not self.write_failed:
                self.write_failed = True
                log.error("run %s: its output cannot be kept, reading on: %s", self.run.id, exc)

    # -- what the run learns ------------------------------------------------------------------

    def learn(self) -> None:
        """Copy what the reducer knows onto the run; any output at all means it is not silent."""
        run = self.run
        knowledge = self.reducer.knowledge if self.reducer is not None else None
        if knowledge is not None and knowledge.activity is not None:
            self.set_activity(knowledge.activity, knowledge.activity_detail)
        else:
            self.set_activity(Activity.WORKING, None)
        if knowledge is None:
            return
        for name in FACTS:
            value = getattr(knowledge, name)
            if value not in (None, ()) and value != getattr(run, name):
                setattr(run, name, value)
                self.dirty = True
        self._learn_approvals(knowledge.approvals)

    def _learn_approvals(self, pending: tuple[Approval, ...]) -> None:
        run = self.run
        for approval in pending:
            if approval.id not in self.asked:
                self.asked[approval.id] = self.clock()
                words = f"{run.agent} wants to run {approval.tool}"
                message = f"{words}: {approval.summary}" if approval.summary else words
                self.attention.append(Attention(run, "awaiting_approval", message, approval))
        for gone in set(self.asked) - {a.id for a in pending}:
            del self.asked[gone]
        first = pending[0] if pending else None
        if first != run.pending_approval:
            run.pending_approval = first
            self.dirty = True

    def set_activity(self, activity: Activity, detail: str | None) -> None:
        run = self.run
        if not run.state.is_live:
            return
        if (run.activity, run.activity_detail) == (activity, detail):
            return
        entering = run.activity is not activity
        run.activity, run.activity_detail = activity, detail
        self.dirty = True
        if entering and activity in ATTENTION_ACTIVITIES:
            self.attention.append(Attention(run, str(activity), self._describe(activity)))

    def _describe(self, activity: Activity) -> str:
        name, detail = self.run.agent, self.run.activity_detail
        words = {
            Activity.NEEDS_LOGIN: f"{name} is waiting for you to log in",
            Activity.STALLED: f"{name} has printed nothing for a while",
            Activity.OFFLINE: f"{name} is offline, waiting for the network",
        }[activity]
        return f"{words}: {detail}" if detail else words

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
        self.learn()
        failed = exit_code != 0 or knowledge.failure is not None
        hint = self.agent.output.hint(knowledge, exit_code) if failed else None
        return Outcome(knowledge.failure, knowledge.failure_kind, hint)

    def attention_at_end(self) -> None:
        """A run that ended in a way its exit code does not show calls for the user."""
        run = self.run
        if run.state.value == "succeeded" and run.denials:
            refused = ", ".join(f"{d.tool} {d.summary}".strip() for d in run.denials[:3])
            message = f"{run.agent} finished, but was refused {len(run.denials)}: {refused}"
            self.attention.append(Attention(run, "denials", message))
        elif run.state.value == "failed" and run.exit_code == 0 and run.error:
            message = f"{run.agent} failed although it exited 0: {run.error}"
            self.attention.append(Attention(run, "hidden_failure", message))

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
                "run": self.run.id,
                "offset": self.offset - len(data),
                "skipped": self.skipped,
                "text": text,
            },
        )
        self.pending.clear()
        self.skipped = 0

    def publish_attention(self) -> None:
        for item in self.attention:
            self.bus.publish("attention", item.to_json())
        self.attention.clear()
