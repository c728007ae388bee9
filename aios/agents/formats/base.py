"""What every agent format provides, and the small shared toolkit for writing one.

A *format* is how AIOS understands one CLI's output: which permission flags it takes, a pure
*reducer* from each output line to what the run knows (and to readable text for the log), a
one-sentence *hint* for a failure, and how to tell whether the user is logged in. Each CLI has
one small module (``claude.py``, ``codex.py`` …) exposing one :class:`Format`; the registry in
``aios.agents.formats`` maps the names config files use to them. Supporting a new agent touches
one file.

Reducers are pure: no I/O, no clock, no asyncio. The supervisor feeds them complete lines (the
newline removed, capped in length) from stdout and, for structured formats, from stderr apart;
for ``text`` formats stdout and stderr arrive merged, all as ``stdout``. What a reducer returns is
appended to the run's readable log: text with ANSI SGR colours (the dashboard renders them as CSS
classes), each piece ending with a newline. The raw stdout lines of structured formats are kept
apart for the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aios.runs import Activity, Denial, FailureKind, Permission, Tokens

__all__ = [
    "AuthState",
    "Format",
    "Knowledge",
    "Reducer",
    "fold",
    "one_line",
    "parse_json",
    "style",
]

RESULT_LINES = 3  # lines of a tool result shown before the rest is folded away
ONE_LINE = 120  # characters of a summary on one line


@dataclass
class Knowledge:
    """What an agent's output has said about its run so far. The supervisor copies it onto the
    run; a reducer only ever writes it.

    Values are replaced, never mutated in place (``denials`` is a tuple), so a snapshot of the
    run never changes under a reader.
    """

    session_id: str | None = None
    model: str | None = None
    tokens: Tokens | None = None
    cost_usd: float | None = None  # only as the CLI reports it: never estimated
    num_turns: int | None = None
    denials: tuple[Denial, ...] = ()
    # None: no opinion (the supervisor keeps what it has).
    activity: Activity | None = None
    activity_detail: str | None = None
    # The stream says the run failed, whatever the exit code: one line saying why.
    failure: str | None = None
    failure_kind: FailureKind | None = None
    malformed: int = 0  # stdout lines of a structured format that were not what it expects

    def working(self) -> None:
        """A sign of normal progress: whatever retrying or waiting there was is over."""
        self.activity, self.activity_detail = Activity.WORKING, None

    def deny(self, tool: str, summary: str = "") -> None:
        denial = Denial(tool, one_line(summary))
        if denial not in self.denials:
            self.denials = (*self.denials, denial)

    def fail(self, message: str, kind: FailureKind = FailureKind.OTHER) -> None:
        self.failure, self.failure_kind = one_line(message, 500), kind


class Reducer:
    """Reads one attempt of one run. Subclasses override what their CLI needs."""

    def __init__(self) -> None:
        self.knowledge = Knowledge()

    def stdout(self, line: str) -> str:
        """One line from stdout; returns readable text for the log ("" for none)."""
        return line + "\n"

    def stderr(self, line: str) -> str:
        """One line from stderr (structured formats only)."""
        return style.dim(line) + "\n"

    def exited(self, exit_code: int) -> None:
        """The process exited: the last chance to conclude (a failure hidden behind exit 0)."""


class AuthState(StrEnum):
    LOGGED_IN = "logged_in"
    NOT_LOGGED_IN = "not_logged_in"
    UNKNOWN = "unknown"


# Whether the user is logged in, as the CLI itself tells (``claude auth status``) or from its key
# variables and settings files: given the resolved executable and the environment the agent
# would get. It may block (at most a few seconds; it must time out), so it runs on a thread.
AuthCheck = Callable[[str, Mapping[str, str]], AuthState]


@dataclass(frozen=True)
class Format:
    name: str
    # JSON lines on stdout, with stderr read apart; False: one merged text stream.
    structured: bool
    # The arguments each permission adds where a command has "{permission}"; None: the CLI has
    # no permission modes.
    permissions: Mapping[Permission, tuple[str, ...]] | None = None
    # A new reducer per attempt; None: the output is not read line by line at all (plain text,
    # kept as it came: the fastest path).
    reducer: Callable[[], Reducer] | None = None
    # One sentence saying what to do about a failed run, from what its output said and its
    # exit code; None when there is nothing useful to say.
    hint: Callable[[Knowledge, int | None], str | None] = field(
        default=lambda knowledge, exit_code: None
    )
    auth: AuthCheck | None = None


def parse_json(line: str) -> dict[str, Any] | None:
    """A JSON object, or None for anything else (a structured format counts those)."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def one_line(text: object, limit: int = ONE_LINE) -> str:
    """Whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def fold(text: str, lines: int = RESULT_LINES) -> str:
    """The first ``lines`` lines of a (tool) result, indented, and a count of the rest."""
    all_lines = text.rstrip("\n").split("\n") if text.strip() else []
    shown = "".join(f"  ⎿ {line}\n" if i == 0 else f"    {line}\n" for i, line in
                    enumerate(all_lines[:lines]))  # fmt: skip
    rest = len(all_lines) - lines
    if rest > 0:
        shown += f"    … +{rest} lines\n"
    return style.dim(shown.rstrip("\n")) + "\n" if shown else ""


class _Style:
    """ANSI SGR wrappers: the log stays readable in a terminal, and the dashboard maps the
    colours to classes (aios.server.ansi)."""

    @staticmethod
    def _sgr(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if text else ""

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def tool(self, text: str) -> str:  # a tool call: bold cyan
        return self._sgr("1;36", text)

    def error(self, text: str) -> str:  # red
        return self._sgr("31", text)

    def warning(self, text: str) -> str:  # yellow
        return self._sgr("33", text)

    def success(self, text: str) -> str:  # green
        return self._sgr("32", text)


style = _Style()
