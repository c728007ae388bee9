"""Replaying a scenario of tests/fakes/streams through its format's reducer, in the order the
fake CLI plays it, keeping what the run knew after every line."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

from aios.agents.formats import FORMATS, Format, Knowledge, Reducer
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
    for stream, line in scenario.steps():
        if stream == "sleep":
            continue
        # A text format gets stdout and stderr merged, all as stdout.
        read = reducer.stderr if stream == "err" and fmt.structured else reducer.stdout
        replayed.text += read(line)
        replayed.steps.append((stream, line, dataclasses.replace(reducer.knowledge)))
    if exit_code is not None:
        reducer.exited(exit_code)
        replayed.text += reducer.ending()
    return replayed


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
