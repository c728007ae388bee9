"""Codex CLI (``codex exec --json``): one JSON event per line on stdout, tracing on stderr.

What the stream says (Codex CLI 0.171.0; codex-rs/exec/src/exec_events.rs; recordings in
tests/fakes/streams/codex-*):

- ``thread.started``: ``thread_id``, the session id (``codex exec resume ID``).
- ``turn.started``; ``turn.completed`` with ``usage`` {input_tokens, cached_input_tokens,
  output_tokens} (input_tokens includes the cached ones); ``turn.failed`` with
  ``error.message``.
- ``item.started`` / ``item.updated`` / ``item.completed`` with an ``item`` of type
  ``agent_message`` (text), ``reasoning`` (text), ``command_execution`` (command,
  aggregated_output, exit_code, status in_progress|completed|failed|declined), ``file_change``
  (changes [{path, kind add|delete|update}], status), ``mcp_tool_call`` (server, tool,
  arguments, result, error), ``web_search`` (query), ``todo_list`` (items [{text, completed}]),
  ``error`` (a warning: message), ``plan`` (text).
- ``error``: ``message``; while it cannot reach the API, ``Reconnecting... 2/5 (…)`` and then,
  for ever, ``Reconnecting... waiting for network (…)``.
- stderr: ``Reading additional input from stdin...``, tracing lines
  (``2026-12-02T00:29:14Z ERROR codex_api::…``: an ERROR there is not by itself a failure),
  ``Not inside a trusted directory and --skip-git-repo-check was not specified.`` (exit 1).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aios.agents.formats.base import (
    AuthState,
    Format,
    JsonReducer,
    Knowledge,
    Login,
    count_of,
    dict_of,
    fold,
    fold_error,
    int_of,
    kind_from,
    list_of,
    one_line,
    str_of,
    style,
    tokens_text,
    tool_call,
)
from aios.agents.formats.checks import home_of, run_check
from aios.runs import Activity, FailureKind, Permission, Tokens

_RECONNECTING = re.compile(r"Reconnecting\.\.\.\s*(\d+)\s*/\s*(\d+)")
_WAITING = re.compile(r"waiting for network", re.I)
_TRACING = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z?\s+(TRACE|DEBUG|INFO|WARN|ERROR)\b")
_UNTRUSTED = "Not inside a trusted directory"
_GONE = re.compile(r"no rollout found|thread .*not found|session .*not found", re.I)
_KINDS = (
    (_GONE, FailureKind.SESSION_GONE),
    (re.compile(_UNTRUSTED + "|skip-git-repo-check", re.I), FailureKind.UNTRUSTED_DIR),
    (
        re.compile(
            r"\b401\b|unauthori[sz]ed|not logged in|missing bearer|invalid.api.key"
            r"|incorrect api key|codex login|missing environment variable",
            re.I,
        ),
        FailureKind.AUTH,
    ),
    (
        re.compile(
            r"failed to lookup address|error sending request|connection (failed|refused|reset)"
            r"|waiting for network|dns error|network is unreachable|timed out",
            re.I,
        ),
        FailureKind.OFFLINE,
    ),
    (
        re.compile(r"usage limit|rate limit|\b429\b|\b5\d\d\b|unexpected status", re.I),
        FailureKind.API,
    ),
)
# A model provider's ``env_key`` that is not set (Codex CLI 0.171.0 says so and exits 1).
_MISSING_KEY = re.compile(r"Missing environment variable: `?(\w+)`?")
_CHANGE = {"add": "Add", "update": "Update", "delete": "Delete"}


def kind_of(text: str) -> FailureKind:
    return kind_from(_KINDS, text)


class CodexReducer(JsonReducer):
    # Why a command or a patch was declined: in ``exec`` nobody is asked, the sandbox refuses.
    declined_by = "the sandbox does not allow it"

    def __init__(self) -> None:
        super().__init__()
        self._shown: set[str] = set()  # items whose call line is already in the log
        self._last_error = ""  # the last error event: repeats are not shown again
        self._turns = 0
        # A turn counts once the model answers in it: one refused before any answer (not
        # logged in, offline) took no turn, whatever turn.started said.
        self._turn_pending = False

    def event(self, event: dict[str, Any]) -> str:
        kind = str_of(event.get("type"))
        handler = {
            "thread.started": self._thread_started,
            "turn.started": self._turn_started,
            "turn.completed": self._turn_completed,
            "turn.failed": self._turn_failed,
            "error": self._error,
            "item.started": self._item,
            "item.updated": self._item,
            "item.completed": self._item,
        }.get(kind)
        if handler:
            return handler(event)
        # item.plan.delta: pieces of a plan item that completes later; request_user_input:
        # exec has nobody to answer, the turn goes on without.
        quiet = ("", "item.plan.delta", "request_user_input")
        return style.dim(f"[{one_line(kind, 40)}]") + "\n" if kind not in quiet else ""

    def _thread_started(self, event: dict[str, Any]) -> str:
        k = self.knowledge
        k.session_id = str_of(event.get("thread_id")) or k.session_id
        return style.dim(f"codex · session {k.session_id}") + "\n" if k.session_id else ""

    def _turn_started(self, event: dict[str, Any]) -> str:
        self._turn_pending = True
        self.knowledge.working()
        return ""

    def _answered(self) -> None:
        if self._turn_pending:
            self._turn_pending = False
            self._turns += 1
            self.knowledge.num_turns = self._turns

    def _turn_failed(self, event: dict[str, Any]) -> str:
        message = str_of(dict_of(event.get("error")).get("message")) or "the turn failed"
        self.knowledge.fail(message, kind_of(message))
        self.knowledge.working()  # no more reconnecting: the turn is over
        return self.conclude(message)

    def _turn_completed(self, event: dict[str, Any]) -> str:
        self._answered()
        k, usage = self.knowledge, dict_of(event.get("usage"))
        given = count_of(usage.get("input_tokens"))
        cached = count_of(usage.get("cached_input_tokens"))
        output = count_of(usage.get("output_tokens"))
        if given or cached or output:
            turn = Tokens(input=max(given - cached, 0), output=output, cached=cached)
            k.tokens = (k.tokens or Tokens()) + turn
        k.working()
        return self.conclude(
            None,
            f"{self._turns} turn{'s' if self._turns != 1 else ''}" if self._turns else "",
            tokens_text(k.tokens),
        )

    def _error(self, event: dict[str, Any]) -> str:
        k, message = self.knowledge, str_of(event.get("message"))
        repeated, self._last_error = message == self._last_error, message
        if match := _RECONNECTING.search(message):
            k.activity = Activity.RETRYING
            k.activity_detail = f"reconnecting {match[1]}/{match[2]}"
        elif _WAITING.search(message):
            k.activity, k.activity_detail = Activity.OFFLINE, "waiting for network"
        else:
            return "" if repeated else style.error(one_line(message, 500)) + "\n"
        return "" if repeated else style.warning(f"↻ {one_line(message, 200)}") + "\n"

    def _item(self, event: dict[str, Any]) -> str:
        phase = str_of(event.get("type")).removeprefix("item.")
        item = dict_of(event.get("item"))
        kind = str_of(item.get("type"))
        if kind != "error":  # a warning item is no sign of progress
            self.knowledge.working()
            self._answered()
        handler = {
            "agent_message": self._text,
            "plan": self._text,
            "reasoning": self._reasoning,
            "command_execution": self._command,
            "file_change": self._file_change,
            "mcp_tool_call": self._mcp,
            "web_search": self._web_search,
            "todo_list": self._todos,
            "error": self._warning,
        }.get(kind)
        if handler:
            return handler(phase, item)
        return style.dim(f"[{one_line(kind, 40)}]") + "\n" if phase == "completed" and kind else ""

    def _text(self, phase: str, item: dict[str, Any]) -> str:
        text = str_of(item.get("text")).rstrip("\n")
        return text + "\n" if phase == "completed" and text.strip() else ""

    def _reasoning(self, phase: str, item: dict[str, Any]) -> str:
        text = str_of(item.get("text"))
        return style.dim(f"✻ {one_line(text, 300)}") + "\n" if phase == "completed" else ""

    def _warning(self, phase: str, item: dict[str, Any]) -> str:
        message = str_of(item.get("message"))
        return style.warning(f"⚠ {one_line(message, 300)}") + "\n" if message else ""

    def _web_search(self, phase: str, item: dict[str, Any]) -> str:
        return self._call_line(item, lambda: tool_call("WebSearch", str_of(item.get("query"))))

    def _call_line(self, item: dict[str, Any], line: Callable[[], str]) -> str:
        """A tool call's line, once: on item.started, or on item.completed when none came."""
        item_id = str_of(item.get("id"))
        if item_id in self._shown:
            return ""
        self._shown.add(item_id)
        return line()

    def _command(self, phase: str, item: dict[str, Any]) -> str:
        command = str_of(item.get("command"))
        out = self._call_line(item, lambda: style.tool(f"$ {one_line(command, 200)}") + "\n")
        if phase != "completed":
            return out
        status = str_of(item.get("status"))
        if status == "declined":
            self.knowledge.deny("command", command)
            return out + style.warning(f"  └ declined: {self.declined_by}") + "\n"
        code = int_of(item.get("exit_code"))
        output = str_of(item.get("aggregated_output"))
        if status == "failed" or (code is not None and code != 0):
            return out + fold_error(f"exit {code if code is not None else '?'}\n{output}".strip())
        return out + (fold(output) if output.strip() else style.dim("  └ exit 0") + "\n")

    def _file_change(self, phase: str, item: dict[str, Any]) -> str:
        if phase != "completed":
            return ""
        out = ""
        for change in map(dict_of, list_of(item.get("changes"))):
            verb = _CHANGE.get(str_of(change.get("kind")), "Change")
            out += tool_call(verb, str_of(change.get("path")))
        if item.get("status") == "failed":
            out += fold_error("the patch was not applied")
        elif item.get("status") == "declined":
            paths = ", ".join(str_of(dict_of(c).get("path")) for c in list_of(item.get("changes")))
            self.knowledge.deny("apply_patch", paths)
            out += style.warning(f"  └ declined: {self.declined_by}") + "\n"
        return out

    def _mcp(self, phase: str, item: dict[str, Any]) -> str:
        name = f"{str_of(item.get('server'))}.{str_of(item.get('tool'))}".strip(".") or "mcp"
        arguments = dict_of(item.get("arguments"))
        first = next((str_of(v) for v in arguments.values() if str_of(v)), "")
        out = self._call_line(item, lambda: tool_call(name, first))
        if phase != "completed":
            return out
        error = str_of(dict_of(item.get("error")).get("message"))
        if error or item.get("status") == "failed":
            return out + fold_error(error or "failed")
        blocks = list_of(dict_of(item.get("result")).get("content"))
        text = "\n".join(str_of(dict_of(b).get("text")) for b in blocks).strip()
        return out + fold(text)

    def _todos(self, phase: str, item: dict[str, Any]) -> str:
        if phase == "updated":  # every tick of the list: shown when it starts and ends only
            return ""
        todos = list(map(dict_of, list_of(item.get("items"))))
        lines = [
            f"{'☑' if t.get('completed') is True else '☐'} {str_of(t.get('text'))}" for t in todos
        ]
        return style.dim("\n".join(lines)) + "\n" if lines else ""

    def stderr(self, line: str) -> str:
        if _TRACING.match(line) or line.startswith("Reading additional input from stdin"):
            return style.dim(line) + "\n"  # logging, not a verdict: the JSON stream says that
        if _UNTRUSTED in line:
            self.knowledge.fail(line.strip(), FailureKind.UNTRUSTED_DIR)
            return style.error(line) + "\n"
        if _GONE.search(line):  # `codex exec resume ID` of a thread this machine does not have
            self.knowledge.fail(line.strip(), FailureKind.SESSION_GONE)
            return style.error(line) + "\n"
        if re.search(r"not logged in", line, re.I):
            self.knowledge.fail(line.strip(), FailureKind.AUTH)
            return style.error(line) + "\n"
        if line.lstrip().lower().startswith("error"):
            self._last_error = self._last_error or line.strip()
            return style.error(line) + "\n"
        return style.dim(line) + "\n"

    def exited(self, exit_code: int) -> None:
        k = self.knowledge
        if exit_code > 0 and k.failure is None and self._last_error:  # < 0: it was killed
            k.fail(self._last_error, kind_of(self._last_error))


HINTS = {
    FailureKind.AUTH: (
        "Log in with `codex login` (or pipe an OPENAI_API_KEY to `codex login --with-api-key`)."
    ),
    FailureKind.UNTRUSTED_DIR: (
        "Codex runs only inside a git repository: run it in one (`git init`), "
        "or add --skip-git-repo-check in a config agent."
    ),
    FailureKind.OFFLINE: (
        "Codex cannot reach its API: check the network, the proxy or the provider's base_url."
    ),
    FailureKind.API: "The OpenAI API refused the request: check the account's usage limits.",
    FailureKind.SESSION_GONE: (
        "Codex no longer has that session on this machine: start afresh with the same prompt."
    ),
}
DECLINED = "Some commands were declined by the sandbox: run it again with permission full."


def hint(knowledge: Knowledge, exit_code: int | None) -> str | None:
    kind = knowledge.failure_kind
    if kind is None and knowledge.activity is Activity.OFFLINE:
        kind = FailureKind.OFFLINE  # stopped while it waited for the network
    missing = _MISSING_KEY.search(knowledge.failure or "")
    if kind is FailureKind.AUTH and missing:
        return (
            f"Codex's model provider reads its key from {missing[1]}: set it where AIOS starts "
            "(~/.profile), then restart AIOS."
        )
    if kind is not None:
        return HINTS.get(kind)
    return DECLINED if knowledge.denials else None


def auth(executable: str, env: Mapping[str, str], timeout: float = 5.0) -> AuthState | Login:
    """A model provider of its own in ``config.toml`` decides; else ``CODEX_API_KEY``; else
    ``codex login status`` (exit 0 logged in; exit 1 with "Not logged in" on stderr).

    The status command knows only codex's own login: it says "Not logged in" to a codex whose
    provider takes its key from a variable, and to one given ``CODEX_API_KEY``, which both work
    (Codex CLI 0.171.0; and that codex ignores ``OPENAI_API_KEY``).
    """
    try:
        found = _config(env)
    except Exception:  # an unreadable home: ask codex itself
        found = None
    if found is not None and (provider := _provider(*found, env)) is not None:
        return provider
    if env.get("CODEX_API_KEY"):
        return Login(AuthState.LOGGED_IN, "with CODEX_API_KEY")
    state = _login_status(executable, env, timeout)
    if state is AuthState.NOT_LOGGED_IN and env.get("OPENAI_API_KEY"):
        return Login(
            state,
            "OPENAI_API_KEY is set, but codex does not read it: run "
            "`printenv OPENAI_API_KEY | codex login --with-api-key`, or set CODEX_API_KEY",
        )
    return state


def _login_status(executable: str, env: Mapping[str, str], timeout: float) -> AuthState:
    result = run_check([executable, "login", "status"], env, timeout)
    if result is None:
        return AuthState.UNKNOWN
    if result.returncode == 0:
        return AuthState.LOGGED_IN
    said = f"{result.stdout}\n{result.stderr}".lower()
    if result.returncode == 1 and "not logged in" in said:
        return AuthState.NOT_LOGGED_IN
    return AuthState.UNKNOWN  # e.g. "Error loading configuration": exit 1 too, but no answer


def _config(env: Mapping[str, str]) -> tuple[Path, dict[str, Any]] | None:
    """``$CODEX_HOME/config.toml`` (``~/.codex/config.toml``) and what it holds; None when there
    is none (the usual case) or codex itself will complain about it."""
    home = env.get("CODEX_HOME")
    directory = Path(home) if home else (base / ".codex" if (base := home_of(env)) else None)
    if directory is None:
        return None
    path = directory / "config.toml"
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


# Built into codex and needing no key (local servers); codex's own tables win over a user's of
# the same name, as does "openai" (which uses its login).
_KEYLESS_PROVIDERS = frozenset({"ollama", "lmstudio"})


def _provider(path: Path, config: dict[str, Any], env: Mapping[str, str]) -> Login | None:
    """What the config's ``model_provider`` says, or None when codex's own login decides (the
    default "openai" provider, or one that asks for it with ``requires_openai_auth``). Only the
    top-level key is read, not a profile's."""
    name = str_of(config.get("model_provider"))
    provider = dict_of(config.get("model_providers")).get(name)
    if name in _KEYLESS_PROVIDERS:
        return Login(AuthState.LOGGED_IN, f'via model provider "{name}" (no key needed)')
    if not name or name == "openai" or dict_of(provider).get("requires_openai_auth") is True:
        return None
    if not isinstance(provider, dict):
        return Login(AuthState.UNKNOWN, f'{path} selects model provider "{name}" but defines none')
    variable = str_of(provider.get("env_key"))
    if not variable:
        return Login(AuthState.LOGGED_IN, f'via model provider "{name}"')
    if env.get(variable):
        return Login(AuthState.LOGGED_IN, f'via model provider "{name}" (key in {variable})')
    return Login(
        AuthState.NOT_LOGGED_IN,
        f'model provider "{name}" reads its key from {variable}: set it where AIOS starts '
        "(~/.profile), then restart AIOS",
    )


FORMAT = Format(
    "codex-json",
    structured=True,
    permissions={
        Permission.READ_ONLY: ("--sandbox", "read-only"),
        Permission.EDIT: ("--sandbox", "workspace-write"),
        Permission.FULL: ("--dangerously-bypass-approvals-and-sandbox",),
    },
    reducer=CodexReducer,
    hint=hint,
    auth=auth,
    # ``codex exec [--json …] resume ID -- PROMPT``: a subcommand, its options before it.
    resume=lambda session: ("resume", session or ""),
)

__all__ = ["FORMAT", "CodexReducer", "auth", "hint", "kind_of"]
