"""Replaying a scenario of tests/fakes/streams through its format's reducer, in the order the
fake CLI plays it, keeping what the run knew after every line."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aios.agents.formats import FORMATS, Format, Knowledge, Reducer
from aios.agents.formats.base import SessionStart
from aios.runs import Activity, Approval, Permission
from aios.server.ansi import strip
from tests.fakes.agent import Scenario

FORMAT_OF = {
    "claude": "claude-stream-json",
    "codex": "codex-json",
    "gemini": "gemini-stream-json",
    "aider": "aider",
}
RED = "\x1b[31m"
YELLOW = "\x1b[33m"


@dataclass
class Replayed:
    format: Format
    reducer: Reducer
    exit_code: int | None  # None: the scenario hangs
    text: str = ""  # the readable log, colours and all
    # (stream, line, what the run knew right after it)
    steps: list[tuple[str, str, Knowledge]] = field(default_factory=list)
    # A two-way session: the lines AIOS wrote to its stdin, in order.
    written: list[str] = field(default_factory=list)
    asked: list[Approval] = field(default_factory=list)  # the requests, as they came
    withdrawn: list[str] = field(default_factory=list)  # and those the agent withdrew

    @property
    def knowledge(self) -> Knowledge:
        return self.reducer.knowledge

    @property
    def plain(self) -> str:
        return strip(self.text)

    @property
    def hint(self) -> str | None:
        return self.format.hint(self.knowledge, self.exit_code)

    def after(self, pattern: str, nth: int = 1) -> Knowledge:
        """What the run knew right after the nth line matching ``pattern``."""
        seen = [k for _, line, k in self.steps if re.search(pattern, line)]
        assert len(seen) >= nth, f"fewer than {nth} lines match {pattern!r}"
        return seen[nth - 1]


def reducer_for(cli: str) -> tuple[Format, Reducer]:
    fmt = FORMATS[FORMAT_OF[cli]]
    assert fmt.reducer is not None
    return fmt, fmt.reducer()


def replay(name: str) -> Replayed:
    scenario = Scenario(name)
    fmt, reducer = reducer_for(name.split("-", maxsplit=1)[0])
    exit_code = None if scenario.exit == "hang" else int(scenario.exit)
    replayed = Replayed(fmt, reducer, exit_code)
    session = Session(replayed, scenario.meta["two_way"]) if "two_way" in scenario.meta else None
    reducer = replayed.reducer  # a two-way session's own
    for stream, line in scenario.steps():
        if stream == "sleep":
            continue
        if session is not None:
            session.before(line)
        # A text format gets stdout and stderr merged, all as stdout.
        read = reducer.stderr if stream == "err" and fmt.structured else reducer.stdout
        replayed.text += read(line)
        replayed.steps.append((stream, line, dataclasses.replace(reducer.knowledge)))
        if session is not None and stream == "out":
            session.after()
    if exit_code is not None:
        reducer.exited(exit_code)
        replayed.text += reducer.ending()
    return replayed


class Session:
    """The user's side of a recorded two-way session (its ``NAME.json`` says what they did under
    ``two_way``): the format's two-way reducer opens it, each request gets the next of
    ``answers`` (allow, always, deny), each turn's end the next of ``messages``, and
    ``interrupt_before`` a line holding that text, a stop's interrupt. What AIOS wrote is kept."""

    def __init__(self, replayed: Replayed, said: dict[str, Any]) -> None:
        two_way = replayed.format.two_way
        assert two_way is not None and two_way.reducer is not None
        self.replayed, self.said = replayed, said
        self.answers, self.messages = list(said.get("answers", [])), list(said.get("messages", []))
        reducer = replayed.reducer = two_way.reducer()
        reducer.two_way = True
        permission = Permission(said["permission"]) if said.get("permission") else None
        start = SessionStart(said["prompt"], said["cwd"], permission, said.get("resume"))
        replayed.written += reducer.open(start)

    def before(self, line: str) -> None:
        stop = self.said.get("interrupt_before")
        if stop and stop in line:
            self.replayed.written += self.replayed.reducer.interrupt()

    def after(self) -> None:
        replayed, reducer = self.replayed, self.replayed.reducer
        replayed.written += reducer.take_outbox()
        asked, withdrawn = reducer.knowledge.drain()
        replayed.withdrawn += withdrawn
        for approval in asked:
            replayed.asked.append(approval)
            if not self.answers:  # left unanswered (it was stopped)
                continue
            decision = self.answers.pop(0)
            allow, always = decision != "deny", decision == "always"
            replayed.written += reducer.reply(approval.id, allow, "", always)
        if reducer.knowledge.activity is Activity.WAITING and self.messages:
            replayed.written += reducer.say(self.messages.pop(0))


def raw_json_in(text: str) -> list[str]:
    """Lines of a log that are whole JSON objects: what a readable log must not show."""
    found = []
    for line in strip(text).splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(line)
    return found
