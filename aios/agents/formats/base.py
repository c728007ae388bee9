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
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aios.runs import Activity, Approval, Denial, FailureKind, Permission, Tokens

__all__ = [
    "AuthState",
    "Format",
    "JsonReducer",
    "Knowledge",
    "Login",
    "Reducer",
    "SessionStart",
    "TwoWay",
    "count_of",
    "dict_of",
    "float_of",
    "fold",
    "fold_error",
    "int_of",
    "kind_from",
    "list_of",
    "one_line",
    "outcome",
    "parse_json",
    "str_of",
    "style",
    "tokens_text",
    "tool_call",
]

CLASSIFIED = 2000  # characters of a message read for its failure kind: the words come first
RESULT_LINES = 3  # lines of a tool result shown before the rest is folded away
RESULT_WIDTH = 240  # characters of one result line shown: a minified file is not a wall of text
ONE_LINE = 120  # characters of a summary on one line


@dataclass
class Knowledge:
    """What an agent's output has said about its run so far. The shell hands it to the lifecycle
    core as an ``Observation``, and the core decides what the run record says; a reducer only
    ever writes it.

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
    # Two-way sessions: requests the agent made, and ones it withdrew, not yet handed on. The
    # shell drains them into the lifecycle core, which alone keeps what is pending (and says
    # the run is awaiting approval meanwhile).
    asked: tuple[Approval, ...] = ()
    withdrawn: tuple[str, ...] = ()

    def working(self) -> None:
        """A sign of normal progress: whatever retrying or waiting there was is over."""
        self.activity, self.activity_detail = Activity.WORKING, None

    def deny(self, tool: str, summary: str = "") -> None:
        denial = Denial(tool, one_line(summary))
        if denial not in self.denials:
            self.denials = (*self.denials, denial)

    def fail(self, message: str, kind: FailureKind = FailureKind.OTHER) -> None:
        self.failure, self.failure_kind = one_line(message, 500), kind

    def ask(self, approval: Approval) -> None:
        """The agent waits for the user to allow or deny a tool."""
        self.asked = (*self.asked, approval)

    def answered(self, approval_id: str) -> None:
        """The agent withdrew a request."""
        self.withdrawn = (*self.withdrawn, approval_id)

    def drain(self) -> tuple[tuple[Approval, ...], tuple[str, ...]]:
        """The requests made and withdrawn since the last call."""
        drained = self.asked, self.withdrawn
        self.asked, self.withdrawn = (), ()
        return drained


class Reducer:
    """Reads one attempt of one run. Subclasses override what their CLI needs."""

    def __init__(self) -> None:
        self.knowledge = Knowledge()
        # A two-way session (the prompt, answers and follow-ups on stdin): between turns it
        # waits for the user instead of ending.
        self.two_way = False
        # Two-way: lines the conversation itself calls for (the next step of a handshake, a
        # message held until the turn before it ended), written to the agent's stdin by the
        # shell after the output line that made them necessary (``take_outbox``).
        self.outbox: list[str] = []
        # Two-way: the conversation cannot go on (its handshake was refused): once the outbox
        # is written, the shell closes the agent's input, as Done does, and the agent ends.
        self.ended = False

    def stdout(self, line: str) -> str:
        """One line from stdout; returns readable text for the log ("" for none)."""
        return line + "\n"

    def stderr(self, line: str) -> str:
        """One line from stderr (structured formats only)."""
        return style.dim(line) + "\n"

    def exited(self, exit_code: int) -> None:
        """The process exited: the last chance to conclude (a failure hidden behind exit 0)."""

    def ending(self) -> str:
        """Readable text for the log once the process exited (called after ``exited``): what
        the output left unsaid, such as text still held back or the verdict of a text format
        that prints none; "" for none."""
        return ""

    def partial(self, tail: str) -> None:
        """Two-way sessions of ``text`` formats: the unterminated last line of the output after
        each read ("" when it ended with a newline). A CLI that asks with ``input()`` prints its
        question or prompt with no newline and waits, so no line would ever show it; the same
        text comes again at the start of the line the next output completes. Lines to write
        in reply go to ``outbox``."""

    # -- two-way sessions: the lines to write to the agent's stdin (each without its newline) --
    # A reducer is the one place that knows where its conversation stands (the ids a JSON-RPC
    # peer gave, whether a turn is running), so it also says what to write. Only formats with
    # a ``TwoWay`` override these.

    def open(self, start: SessionStart) -> list[str]:
        """What to write first: the handshake (or its first step) and the prompt."""
        return []

    def say(self, text: str) -> list[str]:
        """A follow-up message from the user (nothing yet if it must wait for the turn before
        it: it goes to ``outbox`` when that turn ends)."""
        return []

    def reply(self, approval_id: str, allow: bool, message: str, always: bool) -> list[str]:
        """The answer to a request it asked (``always``: allow it for the rest of the session,
        only where its ``Approval`` offered that)."""
        return []

    def finish(self) -> list[str] | None:
        """The user is done: None to close the agent's input now (the CLI takes that as the end
        of the conversation); else lines to write instead, the input staying open (a CLI that
        would take the end of its input as an answer ends the session itself)."""
        return None

    def interrupt(self) -> list[str]:
        """Asked to stop: what asks the agent to end its turn and exit cleanly before the
        signals (SIGTERM → SIGKILL) follow."""
        return []

    def take_outbox(self) -> list[str]:
        lines, self.outbox = self.outbox, []
        return lines


class JsonReducer(Reducer):
    """A reducer for a CLI printing one JSON object per stdout line: subclasses write ``event``.

    Whatever the line, this never raises: a line that is not a JSON object is counted in
    ``malformed`` and shown as the plain text it is, and an event whose shape ``event`` did not
    foresee (a wrong type deep inside) is counted and shown dim on one line instead of stopping
    the run's log.
    """

    concluded = False  # the verdict line is in the log already

    def stdout(self, line: str) -> str:
        event = parse_json(line)
        if event is None:
            if not line.strip():
                return ""
            self.knowledge.malformed += 1
            return line + "\n"
        try:
            return self.event(event)
        except Exception:  # an unforeseen shape: say so, never fail the run's log
            self.knowledge.malformed += 1
            return style.dim(one_line(line)) + "\n"

    def event(self, event: dict[str, Any]) -> str:
        """One JSON object from stdout; returns readable text for the log."""
        return ""

    def conclude(self, failure: str | None, *facts: str) -> str:
        """The verdict line (:func:`outcome`), remembered so that ``ending`` adds no other."""
        self.concluded = True
        return outcome(failure, *facts)

    def ending(self) -> str:
        failure = self.knowledge.failure
        return "" if self.concluded or not failure else self.conclude(failure)


class AuthState(StrEnum):
    LOGGED_IN = "logged_in"
    NOT_LOGGED_IN = "not_logged_in"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Login:
    """A login check's answer with a few words on how it knows or what is missing, shown after
    the state: ``via model provider "x" (key in X_API_KEY)``."""

    state: AuthState
    detail: str | None = None


# Whether the user is logged in, as the CLI itself tells (``claude auth status``) or from its key
# variables and settings files: given the resolved executable and the environment the agent
# would get; a :class:`Login` when there is more to say. It may block (at most a few seconds; it
# must time out), so it runs on a thread.
AuthCheck = Callable[[str, Mapping[str, str]], AuthState | Login]


@dataclass(frozen=True)
class SessionStart:
    """What a two-way session starts from: the protocols that take these as messages (codex's
    app-server, gemini's ACP) rather than flags need them in their handshake."""

    prompt: str
    cwd: str
    permission: Permission | None = None
    resume: str | None = None  # the session to resume; None for a new one


@dataclass(frozen=True)
class TwoWay:
    """How a CLI holds a conversation over its stdin: the prompt, the answers to its permission
    requests and follow-up messages go in as lines (the reducer says which: ``Reducer.open``,
    ``say``, ``reply``), while its events come out.

    ``args`` take the place of ``-- {prompt}`` in the command (the prompt no longer goes on the
    command line). ``command``, when given, first turns the agent's one-way command template
    into the two-way one (codex's ``exec … {prompt}`` becomes ``app-server``), or says it cannot
    (None: that command cannot hold a session, and its runs stay one-way); None keeps it.
    ``how``: a few words for the agents list and docs on the protocol it speaks. ``reducer``:
    one of its own when the two-way protocol is another stream than the one-way output (codex's
    JSON-RPC instead of ``exec --json`` events); None: the format's. ``permissions``: the flags
    of each permission in this mode when they differ from the one-way ones (aider's one-way
    ``--yes-always`` would answer every question itself); None: the format's.
    ``loads_in_a_later_minute``: the CLI loses a session it resumes in the UTC minute the
    session was last written (Gemini CLI's ACP ``session/load``), so a continuation holds its
    handshake until the minute after its parent ended.
    """

    args: tuple[str, ...]
    how: str
    command: Callable[[tuple[str, ...]], tuple[str, ...] | None] | None = None
    reducer: Callable[[], Reducer] | None = None
    permissions: Mapping[Permission, tuple[str, ...]] | None = None
    loads_in_a_later_minute: bool = False


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
    # exit code; None when there is nothing useful to say. Also asked while a run is live
    # (exit code None) and waiting offline or for a login: what to do about the wait.
    hint: Callable[[Knowledge, int | None], str | None] = field(
        default=lambda knowledge, exit_code: None
    )
    auth: AuthCheck | None = None
    # The arguments that make the CLI resume a session (given the session id; None for a CLI
    # that keeps one session per directory, needing no id); None: it cannot resume.
    resume: Callable[[str | None], tuple[str, ...]] | None = None
    needs_session: bool = True  # resuming needs the id the stream reported
    two_way: TwoWay | None = None  # it can hold a conversation on stdin (approvals = "ask")


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
    """The first ``lines`` lines of a (tool) result, indented, and a count of the rest; each
    line cut to ``RESULT_WIDTH`` characters."""
    return _fold(text, lines, style.dim)


def fold_error(text: str, lines: int = RESULT_LINES) -> str:
    """A failed result, folded like :func:`fold`, in red."""
    return _fold(text, lines, style.error)


def _fold(text: str, lines: int, paint: Callable[[str], str]) -> str:
    all_lines = text.rstrip("\n").split("\n") if text.strip() else []
    cut = [line if len(line) <= RESULT_WIDTH else line[: RESULT_WIDTH - 1] + "…"
           for line in all_lines[:lines]]  # fmt: skip
    shown = "".join(f"  └ {line}\n" if i == 0 else f"    {line}\n" for i, line in
                    enumerate(cut))  # fmt: skip
    rest = len(all_lines) - lines
    if rest > 0:
        shown += f"    … +{rest} lines\n"
    return paint(shown.rstrip("\n")) + "\n" if shown else ""


def kind_from(patterns: Iterable[tuple[re.Pattern[str], FailureKind]], text: str) -> FailureKind:
    """The kind of the first pattern found at the start of ``text``; OTHER when none is."""
    head = text[:CLASSIFIED]
    return next((kind for pattern, kind in patterns if pattern.search(head)), FailureKind.OTHER)


def tool_call(name: str, argument: str = "") -> str:
    """One styled line for a tool call, its name and key argument: ``● Bash(npm test)``."""
    name, argument = one_line(name, 60), one_line(argument) if argument else ""
    return style.tool(f"● {name}({argument})" if argument else f"● {name}") + "\n"


def outcome(failure: str | None, *facts: str) -> str:
    """The last line of a run: ``✓ done · 3 turns · 12.3 s · $0.0123``, or ``✗ why``."""
    if failure:
        return style.error(f"✗ {one_line(failure, 300)}") + "\n"
    return style.success(" · ".join(["✓ done", *(fact for fact in facts if fact)])) + "\n"


def tokens_text(tokens: Tokens | None) -> str:
    """``12,400 tokens in (8,000 cached), 512 out`` for a summary line; "" when none."""
    if tokens is None:
        return ""
    given = tokens.input + tokens.cached
    cached = f" ({tokens.cached:,} cached)" if tokens.cached else ""
    return f"{given:,} tokens in{cached}, {tokens.output:,} out"


# Typed reads of decoded JSON: a CLI's event may hold any type where its schema promises one, and
# a reducer must neither raise nor carry a wrong type into what the run knows.


def int_of(value: object) -> int | None:
    """An integer (a float with no fraction counts), never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def count_of(value: object) -> int:
    """A count (of tokens, turns …): a non-negative integer, 0 for anything else."""
    number = int_of(value)
    return number if number is not None and number > 0 else 0


def float_of(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)  # an int of 400 digits does not fit
    except OverflowError:
        return None
    return number if math.isfinite(number) else None  # json.loads takes NaN and Infinity


def str_of(value: object) -> str:
    """A string, or "" for anything else."""
    return value if isinstance(value, str) else ""


def dict_of(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def list_of(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


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
