"""Gemini CLI's two-way sessions (``approvals = "ask"``): the Agent Client Protocol, ``gemini
--acp``, JSON-RPC 2.0 with one message per line on stdin and stdout.

What the protocol says (Gemini CLI 0.61.0, packages/cli/src/acp/; recordings in
tests/fakes/streams/gemini-acp-*):

- We ask ``initialize {protocolVersion: 1, clientCapabilities}``: its answer names the agent
  and its ``agentCapabilities`` (``loadSession: true``). Our capabilities say we read and write
  no files and run no terminals for it (``fs`` false, ``terminal`` false), so gemini does its
  own file and shell work; any request it still makes of us (``fs/*``, ``terminal/*``) gets a
  JSON-RPC error at once, never silence.
- ``session/new {cwd, mcpServers: []}`` → ``sessionId``; or, to continue a run,
  ``session/load {sessionId, cwd, mcpServers: []}``, which replays the earlier conversation as
  ``session/update`` notifications (around its answer; not shown again here).
- ``session/prompt {sessionId, prompt: [{type: "text", text}]}`` runs a turn; its answer ends
  it: ``{stopReason: end_turn|cancelled|max_turn_requests|max_tokens|refusal, _meta: {quota:
  {token_count: {input_tokens, output_tokens}, model_usage: [{model, token_count}]}}}`` (the
  turn's tokens, no cached share; ``model_usage`` also lists the alias ``auto``), or a JSON-RPC
  error whose ``code`` is the API's HTTP status (401, 429 …) and ``message`` its error body.
- Meanwhile ``session/update`` notifications: ``agent_message_chunk`` / ``agent_thought_chunk``
  (text pieces), ``tool_call`` (a tool that needs no approval starts: ``in_progress``),
  ``tool_call_update`` (``completed`` / ``failed`` with ``content``), ``plan``,
  ``available_commands_update``.
- A tool that needs approval makes gemini ask ``session/request_permission {toolCall:
  {toolCallId: "<tool>__…", title, kind, locations, content}, options: [{optionId, kind}]}``
  (``proceed_always``/allow_always, ``proceed_once``/allow_once, ``cancel``/reject_once), and
  wait: the answer is ``{outcome: {outcome: "selected", optionId}}`` or ``{outcome: {outcome:
  "cancelled"}}``. A refused tool gets no update; the model is told it was cancelled.
- ``session/cancel {sessionId}`` (a notification) ends the running turn ``cancelled``, once any
  request it has pending is answered. Closing stdin ends gemini (exit 0).

Failures and retries say on stderr what they say in the one-way mode (``Attempt 2 failed …``):
this reducer reads stderr as gemini.py does, and its kinds and hints are gemini.py's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aios.agents.formats import gemini
from aios.agents.formats.base import (
    SessionStart,
    TwoWay,
    count_of,
    dict_of,
    fold,
    fold_error,
    int_of,
    list_of,
    one_line,
    parse_json,
    str_of,
    style,
    tokens_text,
    tool_call,
)
from aios.runs import Activity, Approval, FailureKind, Tokens

PROTOCOL_VERSION = 1
# Gemini does its own file and shell work: a client that offered these would have to serve
# its reads, writes and terminals.
CAPABILITIES = {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}
NO_METHOD = -32601  # JSON-RPC: the method does not exist (here: AIOS does not serve it)
AUTH_REQUIRED = -32000  # ACP: authentication required (gemini: no key, a refused login)
MODEL_ALIASES = frozenset({"auto"})  # not a model: what gemini was asked to choose from
_ONE_WAY_ONLY = ("-o", "--output-format")
_STOPS = {
    "max_turn_requests": ("the turn reached its limit of model requests", FailureKind.TURN_LIMIT),
    "max_tokens": ("the model reached its token limit", FailureKind.API),
    "refusal": ("the model refused", FailureKind.API),
}


def acp_command(command: tuple[str, ...]) -> tuple[str, ...]:
    """The one-way template as an ACP one: no output format, no ``{resume}`` (a session is
    resumed with ``session/load``, not a flag), and a whole ``{prompt}`` where ``--prompt=`` was,
    for ``--acp`` to take its place. ``{permission}`` stays: ``--approval-mode`` holds in ACP."""
    out: list[str] = []
    skip = False
    for part in command:
        if skip:
            skip = False
            continue
        if part in _ONE_WAY_ONLY:
            skip = True  # and its value
        elif part.startswith("--output-format=") or part == "{resume}":
            continue
        elif part in ("--prompt={prompt}", "-p={prompt}"):
            out.append("{prompt}")
        else:
            out.append(part)
    return tuple(out)


class GeminiAcpReducer(gemini.GeminiReducer):
    """Speaks ACP for one attempt: the handshake, the turns, the requests; reads the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.two_way = True
        self._start = SessionStart("", "")
        self._next = 0  # our next request id
        self._calls: dict[int, str] = {}  # our requests not yet answered: id → method
        self._session = ""  # the ACP session, once open
        self._prompt: int | None = None  # the running turn's request id
        self._held: list[str] = []  # prompts waiting for the turn before them
        # Pending requests: approval id → (its JSON-RPC id, option kind → optionId).
        self._asks: dict[str, tuple[Any, dict[str, str]]] = {}
        self._replaying = False  # session/load replays the earlier conversation: not again
        self._models: dict[str, int] = {}  # model → tokens over the session
        self._calls_made = 0  # tool calls in this turn
        self._note = ""  # said at the next line: a refusal gets no update of its own

    # -- what we write -------------------------------------------------------------------------

    def open(self, start: SessionStart) -> list[str]:
        self._start = start
        self._held.append(start.prompt)
        params = {"protocolVersion": PROTOCOL_VERSION, "clientCapabilities": CAPABILITIES}
        return [self._request("initialize", params)]

    def say(self, text: str) -> list[str]:
        self._held.append(text)
        return self._next_prompt()

    def reply(self, approval_id: str, allow: bool, message: str, always: bool) -> list[str]:
        asked = self._asks.pop(approval_id, None)
        if asked is None:
            return []  # withdrawn, or answered already
        request_id, options = asked
        wanted = ("allow_always", "allow_once") if allow and always else ("allow_once",)
        if not allow:
            wanted = ("reject_once", "reject_always")
            # ACP has no word for why: gemini tells the model the user cancelled it.
            why = f" ({one_line(message)})" if message.strip() else ""
            self._note = style.warning(f"  └ ⊘ denied: not run{why}") + "\n"
        chosen = next((options[kind] for kind in wanted if kind in options), None)
        outcome = (
            {"outcome": "selected", "optionId": chosen}
            if chosen is not None
            else {"outcome": "cancelled"}
        )
        return [_line({"jsonrpc": "2.0", "id": request_id, "result": {"outcome": outcome}})]

    def interrupt(self) -> list[str]:
        """Pending requests are answered ``cancelled`` (gemini waits for them even after a
        cancel), then the running turn is cancelled; nothing held is sent any more."""
        lines = []
        for approval_id, (request_id, _) in self._asks.items():
            self.knowledge.answered(approval_id)
            cancelled = {"outcome": {"outcome": "cancelled"}}
            lines.append(_line({"jsonrpc": "2.0", "id": request_id, "result": cancelled}))
        self._asks.clear()
        self._held.clear()
        if self._prompt is not None and self._session:
            cancel = {"sessionId": self._session}
            lines.append(_line({"jsonrpc": "2.0", "method": "session/cancel", "params": cancel}))
        return lines

    def _request(self, method: str, params: dict[str, Any]) -> str:
        self._next += 1
        self._calls[self._next] = method
        return _line({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})

    def _next_prompt(self) -> list[str]:
        """The next held prompt, when the session is open and no turn runs."""
        if not self._held or not self._session or self._prompt is not None or self.ended:
            return []
        text = self._held.pop(0)
        self._calls_made, self.concluded = 0, False
        params = {"sessionId": self._session, "prompt": [{"type": "text", "text": text}]}
        line = self._request("session/prompt", params)
        self._prompt = self._next
        self.knowledge.working()
        return [line]

    # -- what we read --------------------------------------------------------------------------

    def event(self, event: dict[str, Any]) -> str:
        method = str_of(event.get("method"))
        update = dict_of(dict_of(event.get("params")).get("update"))
        if method == "session/update" and update.get("sessionUpdate") == "agent_message_chunk":
            return self._chunk(update)
        out = self._flush() + self._said_now()
        if method and "id" in event:
            out += self._asked(event, method)
        elif method == "session/update":
            out += self._update(update)
        elif method:
            out += style.dim(f"[{one_line(method, 40)}]") + "\n"
        elif "id" in event:
            out += self._answered(event)
        else:
            self.knowledge.malformed += 1
        return out

    def _chunk(self, update: dict[str, Any]) -> str:
        if self._replaying:
            return ""
        text = str_of(dict_of(update.get("content")).get("text"))
        said = self._message({"role": "assistant", "content": text, "delta": True})
        return self._said_now() + said

    def _said_now(self) -> str:
        note, self._note = self._note, ""
        return note

    def _answered(self, event: dict[str, Any]) -> str:
        request_id = int_of(event.get("id"))
        method = self._calls.pop(request_id, "") if request_id is not None else ""
        error = dict_of(event.get("error"))
        if "error" in event:
            return self._failed(method, request_id, error)
        result = dict_of(event.get("result"))
        if method == "initialize":
            return self._initialized(result)
        if method in ("session/new", "session/load"):
            return self._opened(method, result)
        if method == "session/prompt" and request_id == self._prompt:
            return self._turn_ended(result)
        return ""

    def _initialized(self, result: dict[str, Any]) -> str:
        start = self._start
        agent = dict_of(result.get("agentInfo"))
        version = str_of(agent.get("version"))
        out = style.dim(f"gemini {version} · ACP" if version else "gemini · ACP") + "\n"
        where = {"cwd": start.cwd, "mcpServers": []}
        if start.resume is None:
            self.outbox.append(self._request("session/new", where))
        elif dict_of(result.get("agentCapabilities")).get("loadSession") is True:
            self._replaying = True
            params = {"sessionId": start.resume, **where}
            self.outbox.append(self._request("session/load", params))
        else:
            why = f"gemini cannot resume session {start.resume} over ACP (no loadSession)"
            self._end(why, FailureKind.SESSION_GONE)
            out += style.error(why) + "\n"
        return out

    def _opened(self, method: str, result: dict[str, Any]) -> str:
        k = self.knowledge
        self._session = str_of(result.get("sessionId")) or self._start.resume or ""
        k.session_id = self._session or k.session_id
        k.working()
        self.outbox.extend(self._next_prompt())
        how = "resumed" if method == "session/load" else "new"
        return style.dim(f"· session {self._session} ({how})") + "\n"

    def _turn_ended(self, result: dict[str, Any]) -> str:
        k = self.knowledge
        self._prompt, self._replaying = None, False
        k.failure, k.failure_kind = None, None  # each turn has a verdict of its own
        k.num_turns = (k.num_turns or 0) + 1
        used = self._count(dict_of(dict_of(result.get("_meta")).get("quota")))
        stop = str_of(result.get("stopReason"))
        if stop in _STOPS:
            k.fail(*_STOPS[stop])
        if stop == "cancelled":
            self.concluded = True
            out = style.warning("⊘ cancelled") + "\n"
        else:
            out = self._verdict(used)
        self._between_turns()
        return out

    def _verdict(self, used: Tokens | None = None) -> str:
        """A turn's last line: ``✓ done · turn 2 · 1 tool call · 1,300 tokens in, 13 out``."""
        calls = self._calls_made
        return self.conclude(
            self.knowledge.failure,
            f"turn {self.knowledge.num_turns}" if self.knowledge.num_turns else "",
            f"{calls} tool call{'s' if calls != 1 else ''}" if calls else "",
            tokens_text(used),
        )

    def _between_turns(self) -> None:
        k = self.knowledge
        self.outbox.extend(self._next_prompt())
        if self._prompt is None and not self.ended:
            k.activity, k.activity_detail = Activity.WAITING, "waiting for your next message"

    def _count(self, quota: dict[str, Any]) -> Tokens | None:
        """A turn's tokens (added to the session's; returned) and the model that answered."""
        k = self.knowledge
        counted = dict_of(quota.get("token_count"))
        given = count_of(counted.get("input_tokens"))
        output = count_of(counted.get("output_tokens"))
        used = Tokens(input=given, output=output) if given or output else None
        if used is not None:
            k.tokens = (k.tokens or Tokens()) + used
        for usage in map(dict_of, list_of(quota.get("model_usage"))):
            name, counts = str_of(usage.get("model")), dict_of(usage.get("token_count"))
            if name and name not in MODEL_ALIASES:
                spent = count_of(counts.get("input_tokens")) + count_of(counts.get("output_tokens"))
                self._models[name] = self._models.get(name, 0) + spent
        if self._models:
            k.model = max(self._models, key=lambda name: self._models[name])
        return used

    def _failed(self, method: str, request_id: int | None, error: dict[str, Any]) -> str:
        code = int_of(error.get("code"))
        said = str_of(error.get("message"))
        data = error.get("data")
        details = str_of(dict_of(data).get("details"))
        if data and not details:  # what else it says (a schema's complaint …), on one line
            said = f"{said}: {one_line(json.dumps(data), 300)}"
        # The API's own error body, as JSON, is the message of a failed turn.
        body = dict_of(dict_of(parse_json(said)).get("error"))
        message = details or str_of(body.get("message")) or said or f"{method} failed"
        kind = _kind(code, message)
        if method in ("initialize", "session/new", "session/load") or kind is FailureKind.AUTH:
            self._end(message, kind)  # nothing more can be said in this session
            return style.error(one_line(message, 500)) + "\n"
        self.knowledge.fail(message, kind)
        if method == "session/prompt" and request_id == self._prompt:
            self._prompt, self._replaying = None, False
            self.knowledge.num_turns = (self.knowledge.num_turns or 0) + 1
            out = self._verdict()
            self._between_turns()
            return out
        return style.error(one_line(message, 500)) + "\n"

    def _end(self, message: str, kind: FailureKind) -> None:
        self.knowledge.fail(message, kind)
        self.knowledge.working()  # no longer retrying or waiting: it ends
        self._held.clear()
        self.ended = True
        self.concluded = True  # the error line says it; ending() adds no other

    def _asked(self, event: dict[str, Any], method: str) -> str:
        request_id = event.get("id")
        if method != "session/request_permission":
            # Our capabilities offer none of these: an error at once, so it never waits on us.
            error = {"code": NO_METHOD, "message": f"AIOS does not serve {method}"}
            self.outbox.append(_line({"jsonrpc": "2.0", "id": request_id, "error": error}))
            return style.dim(f"· refused {one_line(method, 40)}: AIOS does not serve it") + "\n"
        params = dict_of(event.get("params"))
        call = dict_of(params.get("toolCall"))
        name, summary = self._tool(call)
        options = {
            str_of(option.get("kind")): str_of(option.get("optionId"))
            for option in map(dict_of, list_of(params.get("options")))
            if str_of(option.get("optionId"))
        }
        approval_id = str(request_id)
        self._asks[approval_id] = (request_id, options)
        self._calls_made += 1
        self._replaying = False
        self.knowledge.ask(Approval(approval_id, name, summary, always="allow_always" in options))
        return tool_call(name, summary) + style.warning("  ? needs your approval") + "\n"

    def _tool(self, call: dict[str, Any]) -> tuple[str, str]:
        """The tool's name (gemini starts its call ids with it) and what it is about: the file
        it touches (relative to the session's directory), else its title (a command)."""
        call_id = str_of(call.get("toolCallId"))
        name = call_id.split("__", 1)[0] if "__" in call_id else str_of(call.get("kind")) or "tool"
        paths = [str_of(p.get("path")) for p in map(dict_of, list_of(call.get("locations")))]
        about = self._relative(next((p for p in paths if p), "")) or str_of(call.get("title"))
        return one_line(name, 60), one_line(about)

    def _relative(self, path: str) -> str:
        """A path inside the session's directory, relative to it."""
        cwd = self._start.cwd.rstrip("/") + "/"
        return path[len(cwd) :] if cwd != "/" and path.startswith(cwd) else path

    def _update(self, update: dict[str, Any]) -> str:
        kind = str_of(update.get("sessionUpdate"))
        if kind in ("available_commands_update", "current_mode_update"):
            self._replaying = False  # sent once a session is open (after a load's replay)
            return ""
        if self._replaying or kind == "user_message_chunk":  # the earlier conversation
            return ""
        self.knowledge.working()
        shown = {
            "agent_thought_chunk": self._thought,
            "tool_call": self._tool_started,
            "tool_call_update": self._result,
            "plan": self._plan,
        }.get(kind)
        if shown is not None:
            return shown(update)
        return style.dim(f"[{one_line(kind, 40)}]") + "\n" if kind else ""

    def _thought(self, update: dict[str, Any]) -> str:
        text = str_of(dict_of(update.get("content")).get("text")).replace("*", "")
        return style.dim(f"✻ {one_line(text)}") + "\n" if text.strip() else ""

    def _tool_started(self, update: dict[str, Any]) -> str:
        name, summary = self._tool(update)
        self._calls_made += 1
        return tool_call(name, summary) + self._result(update)

    def _plan(self, update: dict[str, Any]) -> str:
        return "".join(
            style.dim(f"  {'☑' if e.get('status') == 'completed' else '☐'} "
                      f"{one_line(str_of(e.get('content')))}") + "\n"
            for e in map(dict_of, list_of(update.get("entries")))
        )  # fmt: skip

    def _result(self, update: dict[str, Any]) -> str:
        status = str_of(update.get("status"))
        if status not in ("completed", "failed"):
            return ""
        texts = []
        for item in map(dict_of, list_of(update.get("content"))):
            if item.get("type") == "diff":
                done = "wrote" if item.get("oldText") in (None, "") else "edited"
                texts.append(f"{done} {self._relative(str_of(item.get('path')))}")
            else:
                texts.append(str_of(dict_of(item.get("content")).get("text")))
        text = "\n".join(t for t in texts if t)
        if status == "failed":
            return fold_error(text or "failed")
        return fold(text) or style.dim("  └ done") + "\n"

    def stderr(self, line: str) -> str:
        # gemini logs each JSON-RPC error it answers with: the answer itself is in the log.
        if line.startswith("Error handling request"):
            return style.dim(line) + "\n"
        return super().stderr(line)


def _kind(code: int | None, message: str) -> FailureKind:
    if code in (401, 403, AUTH_REQUIRED):
        return FailureKind.AUTH
    kind = gemini.kind_of(message)
    if kind is FailureKind.OTHER and code is not None and 400 <= code < 600:  # the API's status
        return FailureKind.API
    return kind


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


TWO_WAY = TwoWay(
    args=("--acp",),
    how="the Agent Client Protocol (gemini --acp): tool permission asked as session requests",
    command=acp_command,
    reducer=GeminiAcpReducer,
    # Its session file is named after the minute it was written: a session/load in that minute
    # writes a new, empty file over it and then finds nothing (0.61.0; docs/agents.md).
    loads_in_a_later_minute=True,
)

# The format config files name "gemini-stream-json": gemini.py's, able to hold a session.
FORMAT = replace(gemini.FORMAT, two_way=TWO_WAY)

__all__ = ["FORMAT", "TWO_WAY", "GeminiAcpReducer", "acp_command"]
