"""Claude Code (``claude -p --output-format stream-json --verbose``): one JSON event per line.

What the stream says (Claude Code 2.1.332; recordings in tests/fakes/streams/claude-*, made by
tests/record_claude.py):

- ``system/init``: ``session_id``, ``model``, ``cwd``, ``permissionMode``.
- ``assistant``: one API message (``message.id``) with ``content`` blocks (``text``,
  ``tool_use`` {id, name, input}, ``thinking``) and ``usage``. The CLI prints a message once per
  content block, each time with the usage it has (2.1.332: the figure the message started with),
  so usage is kept per message id (the latest figure wins) and summed over ids. A top-level
  ``error`` (``authentication_failed``, ``billing_error``, ``rate_limit``, ``invalid_request``,
  ``server_error``, ``unknown``) marks a message the CLI made up to report a failure ("Not logged
  in · Please run /login"); 2.1.332 adds ``api_error: "connection_failed"`` when no answer came
  (refused, reset), which is offline.
- ``user``: ``tool_result`` blocks (``tool_use_id``, ``content``, ``is_error``).
- ``system/api_retry``: ``attempt``, ``max_retries``, ``retry_delay_ms``, ``error_status`` (null
  when no answer came at all: refused, unreachable or cut off, which is offline), ``error``.
- ``system/permission_denied`` (2.1.332): ``tool_name``, ``tool_use_id``, ``message``, as a tool
  is refused; the refused ``tool_result`` follows.
- ``result``: ``is_error`` wins over ``subtype`` (a failed login is ``"subtype":"success",
  "is_error":true``); ``num_turns``, ``duration_ms``, ``total_cost_usd``, ``usage`` (the whole
  run's), ``permission_denials`` [{tool_name, tool_use_id, tool_input}], ``errors`` [str]. (Its
  ``type`` is no longer the first key in 2.1.332: the line is read as JSON, never by prefix.)
- stderr: ``No conversation found with session ID: …`` when ``--resume`` names a session this
  directory does not have.

Two-way (``approvals = "ask"``: ``--input-format stream-json --permission-prompt-tool stdio``;
the prompt, follow-ups and answers go in on stdin; the protocol of the Claude Agent SDK, checked
against the real CLI by tests/test_real_two_way_claude.py; the fake's exchange is synthetic):

- in: ``{"type":"control_request","request_id","request":{"subtype":"initialize"}}`` first, then
  user messages ``{"type":"user","message":{"role":"user","content":TEXT}}``.
- out: ``{"type":"control_request","request_id","request":{"subtype":"can_use_tool",
  "tool_name","input","tool_use_id"}}`` asks to use a tool (2.1.332 adds ``display_name``,
  ``description``, ``decision_reason`` and ``permission_suggestions``); ``control_cancel_request``
  (``request_id``) withdraws a request; ``control_response`` answers ours.
- in: ``{"type":"control_response","response":{"subtype":"success","request_id","response":
  {"behavior":"allow","updatedInput":INPUT}}}`` or ``{"behavior":"deny","message":WHY}``.
- "Always": a request's ``permission_suggestions`` are the rules that would stop it asking again
  (PermissionUpdate: ``{"type":"addRules","rules":[{"toolName","ruleContent"}],"behavior":
  "allow","destination":"localSettings"}``, or ``setMode``/``addDirectories`` …). An allow that
  carries them back as ``"updatedPermissions"`` applies them; AIOS sends only the allowing rules
  and directories (never a mode), each with ``"destination":"session"``, so they last as long
  as the session and no settings file (the user's or the repository's) is written. A CLI that
  suggests none of those offers no "always".
- Between turns (after each ``result``) it waits for the next message (2.1.332 says
  ``system/init`` again as each turn starts); closing stdin ends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aios.agents.formats.base import (
    AuthState,
    Format,
    JsonReducer,
    Knowledge,
    SessionStart,
    TwoWay,
    count_of,
    dict_of,
    float_of,
    fold,
    fold_error,
    int_of,
    kind_from,
    list_of,
    one_line,
    str_of,
    style,
    tool_call,
)
from aios.agents.formats.checks import run_check
from aios.agents.formats.claude_tools import key_argument, result_text, widens_for_itself
from aios.formatting import duration
from aios.runs import Activity, Approval, FailureKind, Permission, Tokens

# The ``error`` of an assistant message the CLI wrote itself to report a failure.
_MESSAGE_ERRORS = {
    "authentication_failed": FailureKind.AUTH,
    "billing_error": FailureKind.API,
    "rate_limit": FailureKind.API,
    "invalid_request": FailureKind.API,
    "server_error": FailureKind.API,
}
# What a failure's words say about its kind, first match wins.
_KINDS = (
    (re.compile(r"No conversation found", re.I), FailureKind.SESSION_GONE),
    (
        re.compile(r"not logged in|/login|invalid api key|api key|oauth|authenticat", re.I),
        FailureKind.AUTH,
    ),
    (
        re.compile(
            r"connection error|unable to connect|Connection ?Refused|connection to the API was lost"
            r"|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|fetch failed|network",
            re.I,
        ),
        FailureKind.OFFLINE,
    ),
    (re.compile(r"max(imum)? turns", re.I), FailureKind.TURN_LIMIT),
    (re.compile(r"API Error|overloaded|rate limit|credit|usage limit", re.I), FailureKind.API),
)
# Events that say nothing a person reading the log needs.
_QUIET_SYSTEM = {"hook_started", "hook_response", "hook_progress", "status"}


def kind_of(text: str) -> FailureKind:
    return kind_from(_KINDS, text)


def _tokens(usage: object) -> Tokens | None:
    """Anthropic usage: input not read from the cache includes what was written to it."""
    usage = dict_of(usage)
    figures = [
        count_of(usage.get(k))
        for k in (
            "input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
        )
    ]
    if not any(figures):
        return None
    fresh, written, output, read = figures
    return Tokens(input=fresh + written, output=output, cached=read)


def _total(tokens: Tokens) -> int:
    return tokens.input + tokens.output + tokens.cached


class ClaudeReducer(JsonReducer):
    def __init__(self) -> None:
        super().__init__()
        self._cwd = ""
        self._usage: dict[str, Tokens] = {}  # per API message id: the latest figure
        self._message_failure: FailureKind | None = None
        self._said_init = ""  # the init line last shown
        # Each tool call in flight, its name and key argument by its id (a denial names only the
        # id; its result ends it): never the input itself, which may be a whole file's text.
        self._calls: dict[str, tuple[str, str]] = {}
        # Two-way: the input each pending request asked with (an answer "allow" sends it back),
        # and the permission updates it suggested (an "always" applies them for the session).
        self._inputs: dict[str, Mapping[str, Any]] = {}
        self._suggestions: dict[str, list[dict[str, Any]]] = {}

    def open(self, start: SessionStart) -> list[str]:
        initialize = {
            "type": "control_request",
            "request_id": "aios-initialize",
            "request": {"subtype": "initialize", "hooks": None},
        }
        return [_line(initialize), *self.say(start.prompt)]

    def say(self, text: str) -> list[str]:
        message = {"role": "user", "content": text}
        return [_line({"type": "user", "message": message, "parent_tool_use_id": None})]

    def reply(self, approval_id: str, allow: bool, message: str, always: bool) -> list[str]:
        tool_input = self._inputs.pop(approval_id, {})
        suggestions = self._suggestions.pop(approval_id, [])
        decision: dict[str, Any] = (
            {"behavior": "allow", "updatedInput": dict(tool_input)}
            if allow
            else {"behavior": "deny", "message": message or "The user denied this."}
        )
        if allow and always and suggestions:
            # For this session only: never a destination that writes the user's or the
            # repository's settings, whatever the CLI suggested.
            decision["updatedPermissions"] = [{**s, "destination": "session"} for s in suggestions]
        response = {"subtype": "success", "request_id": approval_id, "response": decision}
        return [_line({"type": "control_response", "response": response})]

    def event(self, event: dict[str, Any]) -> str:
        kind = str_of(event.get("type"))
        handler = {
            "system": self._system,
            "assistant": self._assistant,
            "user": self._user,
            "result": self._result,
            "control_request": self._control_request,
            "control_cancel_request": self._control_cancel,
            "control_response": self._quiet,  # the answer to our initialize
        }.get(kind)
        if handler:
            return handler(event)
        # stream_event: a partial message (--include-partial-messages), complete later.
        return (
            style.dim(f"[{one_line(kind, 40)}]") + "\n" if kind not in ("", "stream_event") else ""
        )

    def _system(self, event: dict[str, Any]) -> str:
        subtype = str_of(event.get("subtype"))
        k = self.knowledge
        if subtype == "init":
            k.session_id = str_of(event.get("session_id")) or k.session_id
            k.model = str_of(event.get("model")) or k.model
            self._cwd = str_of(event.get("cwd"))
            k.working()
            facts = [k.model or "", f"session {k.session_id}" if k.session_id else ""]
            mode = str_of(event.get("permissionMode"))
            facts.append(f"permission mode {mode}" if mode else "")
            said = style.dim("claude · " + " · ".join(f for f in facts if f)) + "\n"
            # A two-way session says it again as each turn starts: once is enough.
            said, self._said_init = ("" if said == self._said_init else said), said
            return said
        if subtype == "api_retry":
            detail = _retry_detail(event)
            # No HTTP status: the request got no answer at all (refused, unreachable).
            offline = int_of(event.get("error_status")) is None
            k.activity = Activity.OFFLINE if offline else Activity.RETRYING
            k.activity_detail = detail
            return style.warning(f"↻ {detail}") + "\n"
        if subtype == "permission_denied":
            # The denial is known at once (the result lists it again at the end); the refused
            # tool result that follows shows its words.
            name, summary = self._calls.get(str_of(event.get("tool_use_id")), ("", ""))
            k.deny(str_of(event.get("tool_name")) or name or "tool", summary)
            return ""
        if subtype == "compact_boundary":
            return style.dim("· conversation compacted") + "\n"
        if subtype in _QUIET_SYSTEM:
            return ""
        return style.dim(f"[system/{one_line(subtype, 40)}]") + "\n" if subtype else ""

    def _assistant(self, event: dict[str, Any]) -> str:
        message = dict_of(event.get("message"))
        message_id = str_of(message.get("id"))
        tokens = _tokens(message.get("usage"))
        if message_id and tokens:
            self._usage[message_id] = tokens
            self.knowledge.tokens = sum(self._usage.values(), Tokens())
        error = str_of(event.get("error"))
        text = "\n".join(
            str_of(b.get("text")) for b in map(dict_of, list_of(message.get("content")))
        ).strip()
        if error:
            # A connection that failed is offline, whatever error the CLI filed it under
            # ("server_error"): 2.1.332 says so in ``api_error``, older ones only in words
            # ("Unable to connect to API (ConnectionRefused)").
            said = kind_of(text)
            if event.get("api_error") == "connection_failed":
                said = FailureKind.OFFLINE
            offline = said is FailureKind.OFFLINE
            self._message_failure = said if offline else _MESSAGE_ERRORS.get(error) or said
            self.knowledge.fail(text or error, self._message_failure)
            return style.error(text or f"error: {error}") + "\n"
        self.knowledge.working()
        out = []
        for block in map(dict_of, list_of(message.get("content"))):
            block_type = block.get("type")
            if block_type == "text" and str_of(block.get("text")).strip():
                out.append(str_of(block.get("text")).rstrip("\n") + "\n")
            elif block_type == "tool_use":
                name = str_of(block.get("name")) or "tool"
                summary = key_argument(name, block.get("input"), self._cwd)
                self._calls[str_of(block.get("id"))] = (name, summary)
                out.append(tool_call(name, summary))
        return "".join(out)

    def _user(self, event: dict[str, Any]) -> str:
        out = []
        for block in map(dict_of, list_of(dict_of(event.get("message")).get("content"))):
            if block.get("type") != "tool_result":
                continue
            self._calls.pop(str_of(block.get("tool_use_id")), None)  # any denial came before
            text = result_text(block.get("content"))
            if block.get("is_error") is True:
                out.append(fold_error(text or "error"))
            else:
                out.append(fold(text) or style.dim("  └ (no output)") + "\n")
        return "".join(out)

    def _result(self, event: dict[str, Any]) -> str:
        text = self._verdict(event)
        if self.two_way:  # the session goes on: this was one turn, and the next may go better
            k = self.knowledge
            k.activity, k.activity_detail = Activity.WAITING, "waiting for your next message"
            self.concluded = False
        return text

    def _verdict(self, event: dict[str, Any]) -> str:
        k = self.knowledge
        if self.two_way:  # each turn of a two-way session has a verdict of its own
            k.failure, k.failure_kind, self._message_failure = None, None, None
        k.session_id = k.session_id or str_of(event.get("session_id")) or None
        # result.usage is the whole run's in the versions we know, but some have reported only
        # the last call there: the larger of it and the sum of the messages is the truer one.
        streamed, reported = k.tokens, _tokens(event.get("usage"))
        k.tokens = max((t for t in (streamed, reported) if t), key=_total, default=None)
        # A run that never reached the API (not logged in, a session gone) still says "$0, 1
        # turn": no tokens and no API time mean no turn was taken and nothing was charged.
        if k.tokens is not None or float_of(event.get("duration_api_ms")):
            turns = int_of(event.get("num_turns"))
            k.num_turns = turns if turns is not None and turns >= 0 else k.num_turns
            k.cost_usd = float_of(event.get("total_cost_usd"))
        for denial in map(dict_of, list_of(event.get("permission_denials"))):
            name = str_of(denial.get("tool_name")) or "tool"
            k.deny(name, key_argument(name, denial.get("tool_input"), self._cwd))
        subtype = str_of(event.get("subtype"))
        if event.get("is_error") is True or subtype.startswith("error"):
            errors = [one_line(e, 300) for e in list_of(event.get("errors")) if str_of(e)]
            why = str_of(event.get("result")) or "; ".join(errors) or _SUBTYPES.get(subtype, "")
            why = why or "claude reported an error"
            if subtype == "error_max_turns":
                kind = FailureKind.TURN_LIMIT
            else:
                kind = self._message_failure or kind_of(why)
            k.fail(why, kind)
        k.working()  # whatever it was retrying or waiting for is over: this is the end
        out = ""
        if k.denials:
            listed = ", ".join(f"{d.tool}({d.summary})" if d.summary else d.tool for d in k.denials)
            out += style.warning(f"⊘ denied: {one_line(listed, 300)}") + "\n"
        seconds = float_of(event.get("duration_ms"))
        return out + self.conclude(
            k.failure,
            f"{k.num_turns} turn{'s' if k.num_turns != 1 else ''}" if k.num_turns else "",
            duration(seconds / 1000, precise=True) if seconds else "",
            f"${k.cost_usd:.4f}" if k.cost_usd else "",
        )

    def _quiet(self, event: dict[str, Any]) -> str:
        return ""

    def _control_request(self, event: dict[str, Any]) -> str:
        request = dict_of(event.get("request"))
        request_id = str_of(event.get("request_id"))
        if str_of(request.get("subtype")) != "can_use_tool" or not request_id:
            return ""
        name = str_of(request.get("tool_name")) or "tool"
        tool_input = dict_of(request.get("input"))
        self._inputs[request_id] = tool_input
        suggestions = map(dict_of, list_of(request.get("permission_suggestions")))
        self._suggestions[request_id] = [s for s in suggestions if widens_for_itself(s)]
        summary = key_argument(name, tool_input, self._cwd)
        always = bool(self._suggestions[request_id])
        self.knowledge.ask(Approval(request_id, name, summary, always=always))
        return style.warning(f"? {name}({summary}) needs your approval") + "\n"

    def _control_cancel(self, event: dict[str, Any]) -> str:
        request_id = str_of(event.get("request_id"))
        self._inputs.pop(request_id, None)
        self._suggestions.pop(request_id, None)
        self.knowledge.answered(request_id)
        return style.dim("· the request was withdrawn") + "\n" if request_id else ""

    def stderr(self, line: str) -> str:
        if "cannot be used with root" in line:  # --dangerously-skip-permissions as root
            self.knowledge.fail(line.strip(), FailureKind.CONFIG)
            return style.error(line) + "\n"
        if "No conversation found with session ID" in line:
            self.knowledge.fail(line.strip(), FailureKind.SESSION_GONE)
            return style.error(line) + "\n"
        if line.lstrip().lower().startswith("error"):
            return style.error(line) + "\n"
        return style.dim(line) + "\n"


_SUBTYPES = {
    "error_max_turns": "reached the maximum number of turns",
    "error_max_budget_usd": "reached the maximum budget",
    "error_during_execution": "failed during execution",
}


def _retry_detail(event: Mapping[str, Any]) -> str:
    """``API retry 7/10, next in 37 s`` (with the HTTP status when there was one)."""
    attempt, most = int_of(event.get("attempt")), int_of(event.get("max_retries"))
    text = "API retry" + (f" {attempt}" if attempt is not None else "")
    text += f"/{most}" if attempt is not None and most is not None else ""
    status = int_of(event.get("error_status"))
    text += f" (HTTP {status})" if status else ""
    delay = float_of(event.get("retry_delay_ms"))
    return text + (
        f", next in {duration(delay / 1000, precise=delay < 10_000)}" if delay is not None else ""
    )


HINTS = {
    FailureKind.AUTH: (
        "Log in: run `claude` in a terminal and type /login, or set an API key (ANTHROPIC_API_KEY)."
    ),
    FailureKind.OFFLINE: "Claude cannot reach the Anthropic API: check the network or the proxy.",
    FailureKind.SESSION_GONE: (
        "Claude no longer has that session in this directory (it keeps sessions per "
        "directory, and forgets them when it is cleaned up): start a new run."
    ),
    FailureKind.TURN_LIMIT: "The run used all its turns: give it a smaller task.",
    FailureKind.CONFIG: (
        "Claude Code refuses permission full (--dangerously-skip-permissions) as root: run AIOS "
        "as a normal user, use permission edit, or set IS_SANDBOX=1 in the agent's env inside "
        "a sandbox."
    ),
    FailureKind.API: "The Anthropic API refused the request: check the account's usage limits.",
}
DENIED = "Some actions were denied: run it again with permission edit, or full for commands."


def hint(knowledge: Knowledge, exit_code: int | None) -> str | None:
    kind = knowledge.failure_kind
    if kind is None and knowledge.activity is Activity.OFFLINE:
        kind = FailureKind.OFFLINE  # it cannot reach the API (still trying, or stopped so)
    if kind is None and exit_code and knowledge.activity is Activity.RETRYING:
        kind = FailureKind.API  # it ended while still retrying an API that answered errors
    if kind is not None:
        return HINTS.get(kind)
    return DENIED if knowledge.denials else None


def auth(executable: str, env: Mapping[str, str], timeout: float = 5.0) -> AuthState:
    """``claude auth status`` prints ``{"loggedIn": …}`` and exits 1 when not logged in."""
    result = run_check([executable, "auth", "status"], env, timeout)
    if result is None:
        return AuthState.UNKNOWN
    try:
        status = json.loads(result.stdout)
    except ValueError:
        return AuthState.UNKNOWN
    logged_in = dict_of(status).get("loggedIn")
    if logged_in is True:
        return AuthState.LOGGED_IN
    if logged_in is False:
        return AuthState.NOT_LOGGED_IN
    return AuthState.UNKNOWN


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


TWO_WAY = TwoWay(
    args=("--input-format", "stream-json", "--permission-prompt-tool", "stdio"),
    how="stream-json on stdin, tool permission asked over its control protocol",
)


FORMAT = Format(
    "claude-stream-json",
    structured=True,
    permissions={
        Permission.READ_ONLY: ("--permission-mode", "plan"),
        Permission.EDIT: ("--permission-mode", "acceptEdits"),
        Permission.FULL: ("--dangerously-skip-permissions",),
    },
    reducer=ClaudeReducer,
    hint=hint,
    auth=auth,
    resume=lambda session: ("--resume", session or ""),
    two_way=TWO_WAY,
)
