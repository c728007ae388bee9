"""Codex CLI two-way (``approvals = "ask"``): ``codex app-server``, JSON-RPC 2.0 over JSON lines
on stdio (the ``jsonrpc`` field left out, as codex writes it).

What the protocol says (Codex CLI 0.171.0; ``codex app-server generate-json-schema``; the
exchanges recorded in tests/fakes/streams/codex-app-server-*):

- in: ``initialize {clientInfo}`` → its response → the notification ``initialized`` and
  ``thread/start {cwd, approvalPolicy, sandbox}`` (or ``thread/resume {threadId, …}``) → its
  response (``thread.id``, the session id; ``model``) → ``turn/start {threadId, input: [{type:
  "text", text}]}``. A ``turn/start`` while a turn runs adds its input to that turn (the
  response names the running turn); between turns it starts the next one. ``turn/interrupt
  {threadId, turnId}`` ends a turn (``turn/completed`` with status ``interrupted``).
- out, requests (an ``id`` and a ``method``): ``item/commandExecution/requestApproval``
  (``command``, ``commandActions``, ``availableDecisions``) and
  ``item/fileChange/requestApproval`` (``itemId``: the paths are in that item's
  ``item/started``). The answer ``{"id", "result": {"decision": "accept" | "acceptForSession"
  | "decline"}}``; ``decline`` lets the turn go on, the model told "rejected by user" (0.171.0
  takes it although a command's ``availableDecisions`` do not list it). ``serverRequest/resolved``
  follows each request, answered or not (a withdrawn one).
- out, notifications: ``thread/started``, ``turn/started``, ``turn/completed`` (``turn.status``
  completed|interrupted|failed, ``turn.error.message``), ``item/started`` / ``item/completed``
  (camelCase items: ``agentMessage``, ``reasoning``, ``commandExecution``, ``fileChange``,
  ``mcpToolCall``, ``webSearch``, ``plan``, ``userMessage`` …), ``thread/tokenUsage/updated``
  (``tokenUsage.total``, the thread's: a resumed thread first repeats the total it had),
  ``error`` (``error.message``, ``additionalDetails``, ``willRetry``: "Reconnecting... 1/1",
  "Reconnecting... waiting for network" as in ``exec``), ``configWarning``; many more (deltas,
  status changes, rate limits) that a complete item or turn repeats.
- A refused request gets ``{"id", "error": {"code", "message"}}``: ``thread/resume`` of a thread
  this machine does not have says "no rollout found for thread id …".
- Closing stdin ends it (exit 0), between turns or in one.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from typing import Any

from aios import __version__
from aios.agents.formats import codex
from aios.agents.formats.base import (
    SessionStart,
    TwoWay,
    count_of,
    dict_of,
    list_of,
    one_line,
    str_of,
    style,
    tokens_text,
)
from aios.runs import Activity, Approval, Permission, Tokens

# What a run's permission asks codex for: "untrusted" asks for every command it does not know
# to be a harmless read and for every patch (0.171.0 asks for patches even where the sandbox
# would let them write), and an allowed one runs outside the sandbox; "never" asks for nothing.
POLICIES: dict[Permission | None, dict[str, str]] = {
    None: {"approvalPolicy": "untrusted"},  # its sandbox as its config.toml says
    Permission.READ_ONLY: {"approvalPolicy": "untrusted", "sandbox": "read-only"},
    Permission.EDIT: {"approvalPolicy": "untrusted", "sandbox": "workspace-write"},
    Permission.FULL: {"approvalPolicy": "never", "sandbox": "danger-full-access"},
}
# Options of ``codex exec`` that ``codex app-server`` takes as well (each with its value).
_KEPT = frozenset({"-c", "--config", "--enable", "--disable"})
_KEPT_FLAGS = frozenset({"--strict-config"})
# Options of ``codex exec`` that take a value: dropped with it (they say nothing to app-server).
_VALUED = frozenset(
    {
        "--remote", "--remote-auth-token-env", "-i", "--image", "--local-provider", "-p",
        "--profile", "-s", "--sandbox", "-C", "--cd", "--add-dir", "--thread-source",
        "--cyber-access-program", "--output-schema", "--color", "-o", "--output-last-message",
    }
)  # fmt: skip
_SUBCOMMANDS = ("exec", "e")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SHELL = re.compile(r"^(?:/\S*/)?(?:ba|z)?sh -lc (.+)$", re.S)
# Requests AIOS cannot answer for the user: refused at once, so the turn does not hang on them.
_UNANSWERED = -32601
# Notifications that warn about its setup (a missing bubblewrap, a deprecated option): shown.
_WARNINGS = ("configWarning", "warning", "deprecationNotice", "guardianWarning")


def app_server(command: tuple[str, ...]) -> tuple[str, ...] | None:
    """``codex [options] exec [options] {permission} {resume} -- {prompt}`` → ``codex app-server
    [options]``: the configuration options app-server takes too (``-c key=value``, ``--enable``,
    ``--disable``, ``--strict-config``; ``-m MODEL`` becomes ``-c model=MODEL``) are kept, every
    other ``exec`` option is dropped; permission and resume go in the handshake. None for a
    command with no ``exec`` subcommand."""
    at = next((i for i, part in enumerate(command) if i and part in _SUBCOMMANDS), None)
    if at is None:
        return None
    kept: list[str] = []
    parts = iter(command[1:at] + command[at + 1 :])
    for part in parts:
        name, equals, value = part.partition("=")
        if part == "--":
            break  # the prompt's: nothing after it is an option
        if name in _KEPT or (name in ("-m", "--model")):
            value = value if equals else next(parts, "")
            kept += ["-c", f"model={value}"] if name in ("-m", "--model") else [name, value]
        elif part in _KEPT_FLAGS:
            kept.append(part)
        elif name in _VALUED and not equals:
            next(parts, None)
    return (command[0], "app-server", *kept)


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _shown(command: str, actions: object) -> str:
    """The command as the model wrote it: codex wraps it in ``/bin/bash -lc '…'``."""
    parsed = [str_of(dict_of(a).get("command")) for a in list_of(actions)]
    if len(parsed) == 1 and parsed[0]:
        return parsed[0]
    wrapped = _SHELL.match(command)
    return wrapped[1].strip("'\"") if wrapped else command


def _tokens(figures: object) -> Tokens:
    usage = dict_of(figures)
    given, cached = count_of(usage.get("inputTokens")), count_of(usage.get("cachedInputTokens"))
    return Tokens(max(given - cached, 0), count_of(usage.get("outputTokens")), cached)


def _kebab(name: str) -> str:
    """``workspaceWrite`` → ``workspace-write``."""
    return re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()


def _item(item: dict[str, Any]) -> dict[str, Any] | None:
    """An app-server item as ``exec --json`` writes the same one (None: not shown), so the
    one-way reducer's rendering serves both."""
    kind = str_of(item.get("type"))
    status = _kebab(str_of(item.get("status"))).replace("-", "_")
    if kind == "commandExecution":
        return {
            "id": item.get("id"),
            "type": "command_execution",
            "command": _shown(str_of(item.get("command")), item.get("commandActions")),
            "aggregated_output": item.get("aggregatedOutput"),
            "exit_code": item.get("exitCode"),
            "status": status,
        }
    if kind == "fileChange":
        changes = [
            {"path": c.get("path"), "kind": dict_of(c.get("kind")).get("type")}
            for c in map(dict_of, list_of(item.get("changes")))
        ]
        return {"id": item.get("id"), "type": "file_change", "changes": changes, "status": status}
    if kind == "reasoning":
        parts = list_of(item.get("summary")) or list_of(item.get("content"))
        text = " ".join(str_of(p) or str_of(dict_of(p).get("text")) for p in parts)
        return {"id": item.get("id"), "type": "reasoning", "text": text} if text.strip() else None
    simple = {
        "agentMessage": "agent_message",
        "plan": "plan",
        "mcpToolCall": "mcp_tool_call",
        "webSearch": "web_search",
    }.get(kind)
    if simple:
        return {**item, "type": simple, "status": status}
    return None  # the user's own message, and what AIOS has no words for yet


class AppServerReducer(codex.CodexReducer):
    """Speaks to ``codex app-server`` and reads what it says."""

    declined_by = "you declined it"

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count()
        self._calls: dict[int, str] = {}  # our requests awaiting their response, by id
        self._start: SessionStart | None = None
        self._thread = ""
        self._turn = ""  # the running turn ("" between turns)
        self._ours: set[str] = set()  # the turns of this session (not a resumed thread's)
        self._held: list[str] = []  # messages given before the thread existed
        self._pending: dict[str, Any] = {}  # approval id → the request's JSON-RPC id
        self._paths: dict[str, str] = {}  # file change item → its paths, for its request
        self._before = Tokens()  # a resumed thread's tokens, not this run's
        self._messages = 0  # the user's messages it has read

    # -- what AIOS writes ---------------------------------------------------------------------

    def _request(self, method: str, params: dict[str, Any]) -> str:
        call = next(self._ids)
        self._calls[call] = method
        return _line({"id": call, "method": method, "params": params})

    def open(self, start: SessionStart) -> list[str]:
        self._start = start
        info = {"name": "aios", "title": "AIOS", "version": __version__}
        return [self._request("initialize", {"clientInfo": info})]

    def say(self, text: str) -> list[str]:
        if not self._thread:  # still shaking hands: it follows the prompt
            self._held.append(text)
            return []
        turn = {"threadId": self._thread, "input": [{"type": "text", "text": text}]}
        return [self._request("turn/start", turn)]

    def reply(self, approval_id: str, allow: bool, message: str, always: bool) -> list[str]:
        if approval_id not in self._pending:  # withdrawn, or answered already
            return []
        decision = ("acceptForSession" if always else "accept") if allow else "decline"
        return [_line({"id": self._pending.pop(approval_id), "result": {"decision": decision}})]

    def interrupt(self) -> list[str]:
        if not (self._thread and self._turn):
            return []
        return [self._request("turn/interrupt", {"threadId": self._thread, "turnId": self._turn})]

    # -- what codex says ----------------------------------------------------------------------

    def event(self, event: dict[str, Any]) -> str:
        method = str_of(event.get("method"))
        if not method:
            return self._response(event)
        if "id" in event:
            return self._server_request(method, event.get("id"), dict_of(event.get("params")))
        return self._notification(method, dict_of(event.get("params")))

    def _response(self, event: dict[str, Any]) -> str:
        call = event.get("id")
        method = self._calls.pop(call, "") if isinstance(call, int) else ""
        if "error" in event:
            return self._refused(method, str_of(dict_of(event.get("error")).get("message")))
        result = dict_of(event.get("result"))
        if method == "initialize":
            self.outbox += [_line({"method": "initialized"}), self._thread_request()]
        elif method in ("thread/start", "thread/resume"):
            return self._opened(result)
        elif method == "turn/start":
            turn = str_of(dict_of(result.get("turn")).get("id"))
            self._ours.add(turn)
            self._turn = self._turn or turn
        return ""

    def _thread_request(self) -> str:
        start = self._start or SessionStart("", "")
        params: dict[str, Any] = {"cwd": start.cwd, **POLICIES.get(start.permission, {})}
        if start.resume:
            # Only what the turns need: the earlier ones are the model's, not the log's.
            return self._request(
                "thread/resume", {"threadId": start.resume, **params, "excludeTurns": True}
            )
        return self._request("thread/start", params)

    def _opened(self, result: dict[str, Any]) -> str:
        k = self.knowledge
        self._thread = str_of(dict_of(result.get("thread")).get("id"))
        k.session_id = self._thread or k.session_id
        k.model = str_of(result.get("model")) or k.model
        held, self._held = self._held, []
        prompt = self._start.prompt if self._start else ""
        self.outbox += [line for text in (prompt, *held) for line in self.say(text)]
        policy = str_of(result.get("approvalPolicy"))
        sandbox = _kebab(str_of(dict_of(result.get("sandbox")).get("type")))
        facts = [k.model or "", f"session {k.session_id}" if k.session_id else ""]
        facts.append(f"approvals {policy}" if policy else "")
        facts.append(f"sandbox {sandbox}" if sandbox else "")
        return style.dim("codex app-server · " + " · ".join(f for f in facts if f)) + "\n"

    def _refused(self, method: str, message: str) -> str:
        k = self.knowledge
        message = message or f"codex refused {method or 'a request'}"
        if method in ("initialize", "thread/start", "thread/resume"):
            k.fail(message, codex.kind_of(message))
            self.ended = True  # no session to hold: its input closes and it ends
            return self.conclude(message)
        if method == "turn/start" and not self._turn:
            k.activity, k.activity_detail = Activity.WAITING, "waiting for your next message"
        return style.error(f"{method or 'request'}: {one_line(message, 300)}") + "\n"

    def _server_request(self, method: str, call: Any, params: dict[str, Any]) -> str:
        if method == "item/commandExecution/requestApproval":
            command = _shown(str_of(params.get("command")), params.get("commandActions"))
            decisions = params.get("availableDecisions")
            always = not isinstance(decisions, list) or "acceptForSession" in decisions
            return self._ask(call, "shell", command, always)
        if method == "item/fileChange/requestApproval":
            paths = self._paths.get(str_of(params.get("itemId")), "")
            return self._ask(call, "apply_patch", paths or str_of(params.get("reason")), True)
        error = {"code": _UNANSWERED, "message": f"AIOS does not answer {method}"}
        self.outbox.append(_line({"id": call, "error": error}))
        return style.dim(f"[{one_line(method, 60)}: not answered]") + "\n"

    def _ask(self, call: Any, tool: str, summary: str, always: bool) -> str:
        approval_id = str(call)
        self._pending[approval_id] = call
        self.knowledge.ask(Approval(approval_id, tool, one_line(summary), always=always))
        return style.warning(f"? {tool}({one_line(summary)}) needs your approval") + "\n"

    def _notification(self, method: str, params: dict[str, Any]) -> str:
        handler = {
            "item/started": self._item_event,
            "item/completed": self._item_event,
            "turn/started": self._turn_began,
            "turn/completed": self._turn_ended,
            "thread/tokenUsage/updated": self._usage,
            "thread/started": self._thread_began,
            "error": self._error_said,
            "serverRequest/resolved": self._resolved,
        }.get(method)
        if handler is not None:
            return handler(method, params)
        if method in _WARNINGS:
            said = str_of(params.get("summary")) or str_of(params.get("message"))
            return style.warning(f"⚠ {one_line(said, 300)}") + "\n" if said else ""
        return ""

    def _thread_began(self, method: str, params: dict[str, Any]) -> str:
        k = self.knowledge
        k.session_id = k.session_id or str_of(dict_of(params.get("thread")).get("id")) or None
        return ""

    def _turn_began(self, method: str, params: dict[str, Any]) -> str:
        turn = str_of(dict_of(params.get("turn")).get("id"))
        self._ours.add(turn)
        self._turn = turn
        return self._turn_started(params)

    def _error_said(self, method: str, params: dict[str, Any]) -> str:
        error = dict_of(params.get("error"))
        message, details = str_of(error.get("message")), str_of(error.get("additionalDetails"))
        if params.get("willRetry") is False:  # the turn fails with it next: said there, once
            self._last_error = message
            return ""
        return self._error({"message": f"{message} ({details})" if details else message})

    def _resolved(self, method: str, params: dict[str, Any]) -> str:
        approval_id = str(params.get("requestId"))
        if self._pending.pop(approval_id, None) is None:  # answered by us
            return ""
        self.knowledge.answered(approval_id)  # codex withdrew it (the turn ended)
        return style.dim("· the request was withdrawn") + "\n"

    def _item_event(self, method: str, params: dict[str, Any]) -> str:
        item = dict_of(params.get("item"))
        kind = item.get("type")
        if kind == "userMessage" and method == "item/completed":
            return self._user_message(item)
        if kind == "fileChange":
            changes = [dict_of(c) for c in list_of(item.get("changes"))]
            for change in changes:
                change["path"] = self._relative(str_of(change.get("path")))
            item = {**item, "changes": changes}
            paths = ", ".join(p for c in changes if (p := str_of(c.get("path"))))
            self._paths[str_of(item.get("id"))] = paths
        shown = _item(item)
        if shown is None:
            return ""
        phase = "item.started" if method == "item/started" else "item.completed"
        return self._item({"type": phase, "item": shown})

    def _user_message(self, item: dict[str, Any]) -> str:
        """The user's follow-ups, as they reached the model (the prompt is the run's own)."""
        self._messages += 1
        if self._messages == 1:
            return ""
        parts = map(dict_of, list_of(item.get("content")))
        text = " ".join(str_of(p.get("text")) for p in parts if p.get("type") == "text")
        return style.dim(f"» {one_line(text, 300)}") + "\n" if text.strip() else ""

    def _relative(self, path: str) -> str:
        cwd = self._start.cwd.rstrip("/") + "/" if self._start and self._start.cwd else ""
        return path[len(cwd) :] if cwd and path.startswith(cwd) else path

    def _usage(self, method: str, params: dict[str, Any]) -> str:
        total = _tokens(dict_of(params.get("tokenUsage")).get("total"))
        if str_of(params.get("turnId")) not in self._ours:
            self._before = total  # a resumed thread says what it had used before this run
            return ""
        before = self._before
        self.knowledge.tokens = Tokens(
            max(total.input - before.input, 0),
            max(total.output - before.output, 0),
            max(total.cached - before.cached, 0),
        )
        return ""

    def _turn_ended(self, method: str, params: dict[str, Any]) -> str:
        k, turn = self.knowledge, dict_of(params.get("turn"))
        self._turn = ""
        status = str_of(turn.get("status"))
        if status == "interrupted":  # AIOS interrupts only to stop: what it waited on stays
            return style.warning("⏹ interrupted") + "\n"
        k.failure, k.failure_kind = None, None  # each turn has a verdict of its own
        message = str_of(dict_of(turn.get("error")).get("message"))
        if status == "failed":
            k.fail(message or "the turn failed", codex.kind_of(message))
            text = self.conclude(k.failure)
        else:
            self._answered()
            turns = f"{self._turns} turn{'s' if self._turns != 1 else ''}" if self._turns else ""
            text = self.conclude(None, turns, tokens_text(k.tokens))
        # Between turns it waits for the user's next message (Done closes its input).
        k.activity, k.activity_detail = Activity.WAITING, "waiting for your next message"
        self.concluded = status == "failed"  # said: the end need not say it again
        return text

    def stderr(self, line: str) -> str:
        return super().stderr(_ANSI.sub("", line))  # its tracing is coloured even on a pipe


TWO_WAY = TwoWay(
    args=(),
    how="codex app-server: JSON-RPC on stdin, commands and file changes asked for",
    command=app_server,
    reducer=AppServerReducer,
)
# Codex's format with its two-way protocol: the registry's (codex.py cannot import this module,
# which builds on it).
FORMAT = replace(codex.FORMAT, two_way=TWO_WAY)

__all__ = ["FORMAT", "POLICIES", "TWO_WAY", "AppServerReducer", "app_server"]
