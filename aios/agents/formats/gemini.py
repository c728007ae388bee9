"""Gemini CLI (``gemini -o stream-json``): one JSON event per line on stdout, retries on stderr.

What the stream says (Gemini CLI 0.61.0; packages/core/src/output/types.ts and
packages/cli/src/nonInteractiveCli.ts; recordings in tests/fakes/streams/gemini-*):

- ``init``: ``session_id``, ``model``.
- ``message``: ``role`` user|assistant, ``content``; assistant text arrives in pieces
  (``"delta": true``) that are joined here into whole lines.
- ``tool_use``: ``tool_name``, ``tool_id``, ``parameters``; ``tool_result``: ``tool_id``,
  ``status`` success|error, ``output``, ``error`` {type, message}. Headless, a tool that needs
  confirmation fails with "… requires user confirmation, which is not supported in
  non-interactive mode." (a denial, not a crash); a policy rule denies with "Tool execution
  denied by policy.".
- ``error``: ``severity`` warning|error, ``message`` (loop detected, turn limit …).
- ``result``: ``status`` success|error, ``error`` {type, message}, ``stats`` {total_tokens,
  input_tokens (cached included), output_tokens, cached, input (not cached), duration_ms,
  tool_calls, models (the model that answered → its usage; init's ``model`` is the one asked
  for, ``auto`` by default)}.
- stderr, while it retries (stdout is silent meanwhile, minutes on end with the default ten
  attempts): ``Attempt 1 failed with status 500. Retrying with backoff... _ApiError: …`` for an
  API error, ``Attempt 3 failed. Retrying with backoff... Error: exception TypeError: fetch
  failed sending request`` while the API cannot be reached (offline), ``Attempt 2 failed: ….
  Max attempts reached`` when it gives up; before any event, the reason it will not start (no
  auth method: exit 41; untrusted folder: exit 55). A stream cut off midway is not retried:
  ``[API Error: terminated]``. A run that gives up on an HTTP error exits with the status's
  low byte (500 → 244, 429 → 173).
- Exit codes: 41 auth, 42 input, 44 sandbox, 52 config, 53 turn limit, 54 tool, 55 untrusted
  folder, 130 cancelled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aios.agents.formats.base import (
    CLASSIFIED,
    AuthState,
    Format,
    JsonReducer,
    Knowledge,
    count_of,
    dict_of,
    float_of,
    fold,
    fold_error,
    kind_from,
    one_line,
    str_of,
    style,
    tokens_text,
    tool_call,
)
from aios.agents.formats.checks import home_of
from aios.formatting import duration
from aios.runs import Activity, FailureKind, Permission, Tokens

EXIT_KINDS = {
    41: FailureKind.AUTH,
    42: FailureKind.INPUT,
    44: FailureKind.CONFIG,  # the sandbox could not be set up
    52: FailureKind.CONFIG,
    53: FailureKind.TURN_LIMIT,
    54: FailureKind.TOOL,
    55: FailureKind.UNTRUSTED_DIR,
}
_EXIT_WORDS = {
    41: "no authentication method is set up",
    42: "the input was rejected",
    44: "the sandbox could not be set up",
    52: "the configuration could not be loaded",
    53: "the session reached its turn limit",
    54: "a tool failed fatally",
    55: "the folder is not trusted",
}
# The error types gemini names in result.error.type (its error classes).
_TYPE_KINDS = {
    "FatalAuthenticationError": FailureKind.AUTH,
    "FatalInputError": FailureKind.INPUT,
    "FatalConfigError": FailureKind.CONFIG,
    "FatalSandboxError": FailureKind.CONFIG,
    "FatalTurnLimitedError": FailureKind.TURN_LIMIT,
    "FatalToolExecutionError": FailureKind.TOOL,
    "FatalUntrustedWorkspaceError": FailureKind.UNTRUSTED_DIR,
}
_KINDS = (
    # --resume of a session this folder does not have (gemini's SessionError messages).
    (
        re.compile(r"Invalid session identifier|No previous sessions found", re.I),
        FailureKind.SESSION_GONE,
    ),
    (
        re.compile(r"not running in a trusted directory|trusted folder", re.I),
        FailureKind.UNTRUSTED_DIR,
    ),
    # Before auth: a 429's message ends "… or switch to another /auth method".
    (re.compile(r"quota|\b429\b|RESOURCE_EXHAUSTED", re.I), FailureKind.API),
    (
        re.compile(r"auth method|GEMINI_API_KEY|api key not valid|unauthenticated|\b401\b", re.I),
        FailureKind.AUTH,
    ),
    (
        # "terminated": the connection was cut in the middle of an answer.
        re.compile(
            r"fetch failed|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|network"
            r"|API Error: terminated",
            re.I,
        ),
        FailureKind.OFFLINE,
    ),
    (re.compile(r"turn limit|max(imum)? session turns", re.I), FailureKind.TURN_LIMIT),
    (re.compile(r"quota|\b429\b|\b5\d\d\b|RESOURCE_EXHAUSTED|overloaded", re.I), FailureKind.API),
)
HELD_BACK = 4000  # characters of an unfinished line of assistant text kept for its end
_ATTEMPT = re.compile(r"Attempt (\d+) failed(?: with status (\d+))?")
_GAVE_UP = "Max attempts reached"
_NEEDS_CONFIRMATION = "requires user confirmation"
_DENIED_BY_POLICY = re.compile(r"denied by policy", re.I)
_ANY_ARGUMENT = (
    "command",
    "file_path",
    "absolute_path",
    "dir_path",
    "path",
    "pattern",
    "query",
    "url",
    "prompt",
    "fact",
    "paths",
    "include",
)
# Environment variables that give gemini an auth method by themselves (getAuthTypeFromEnv).
AUTH_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")
AUTH_FLAGS = (
    "GOOGLE_GENAI_USE_GCA",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "CLOUD_SHELL",
    "GEMINI_CLI_USE_COMPUTE_ADC",
)


def kind_of(text: str) -> FailureKind:
    return kind_from(_KINDS, text)


def _model_used(stats: dict[str, Any]) -> str:
    """The model that answered, from ``stats.models`` (model → its usage): init names only the
    one asked for, often ``auto``. Where several answered, the one that used the most tokens."""
    models = dict_of(stats.get("models"))
    used = [(count_of(dict_of(usage).get("total_tokens")), name) for name, usage in models.items()]
    return max(used, default=(0, ""))[1]


def key_argument(parameters: object) -> str:
    arguments = dict_of(parameters)
    for key in _ANY_ARGUMENT:
        value = arguments.get(key)
        if isinstance(value, list):
            value = ", ".join(str_of(v) for v in value if str_of(v))
        if str_of(value):
            return one_line(value)
    return ""


class GeminiReducer(JsonReducer):
    def __init__(self) -> None:
        super().__init__()
        self._text = ""  # assistant text not yet ended by a newline
        self._tools: dict[str, tuple[str, str]] = {}  # tool_id → (name, key argument)
        self._said = ""  # the last error words seen, for a failure the exit code announces

    def event(self, event: dict[str, Any]) -> str:
        kind = str_of(event.get("type"))
        if kind == "message":
            return self._message(event)
        handler = {
            "init": self._init,
            "tool_use": self._tool_use,
            "tool_result": self._tool_result,
            "error": self._error,
            "result": self._result,
        }.get(kind)
        out = self._flush()  # any other event ends the assistant's line
        if handler:
            return out + handler(event)
        return out + (style.dim(f"[{one_line(kind, 40)}]") + "\n" if kind else "")

    def _init(self, event: dict[str, Any]) -> str:
        k = self.knowledge
        k.session_id = str_of(event.get("session_id")) or k.session_id
        k.model = str_of(event.get("model")) or k.model
        k.working()
        facts = [k.model or "", f"session {k.session_id}" if k.session_id else ""]
        return style.dim("gemini · " + " · ".join(f for f in facts if f)) + "\n"

    def _tool_use(self, event: dict[str, Any]) -> str:
        self.knowledge.working()
        name = str_of(event.get("tool_name")) or "tool"
        argument = key_argument(event.get("parameters"))
        self._tools[str_of(event.get("tool_id"))] = (name, argument)
        return tool_call(name, argument)

    def _error(self, event: dict[str, Any]) -> str:
        message = str_of(event.get("message"))
        if event.get("severity") == "warning":
            return style.warning(f"⚠ {one_line(message, 300)}") + "\n"
        self._said = message or self._said
        return style.error(one_line(message, 500)) + "\n"

    def _message(self, event: dict[str, Any]) -> str:
        if event.get("role") != "assistant":
            return ""  # the prompt, echoed back
        self.knowledge.working()
        content = str_of(event.get("content"))
        if event.get("delta") is not True:  # a whole message
            return self._flush() + (content.rstrip("\n") + "\n" if content.strip() else "")
        done, newline, self._text = (self._text + content).rpartition("\n")
        if len(self._text) > HELD_BACK:  # a line without end: shown as it is, not hoarded
            return done + newline + self._flush()
        return done + "\n" if newline else ""

    def _flush(self) -> str:
        text, self._text = self._text, ""
        return text + "\n" if text.strip() else ""

    def _tool_result(self, event: dict[str, Any]) -> str:
        self.knowledge.working()
        name, argument = self._tools.get(str_of(event.get("tool_id")), ("tool", ""))
        if event.get("status") != "error":
            return fold(str_of(event.get("output"))) or style.dim("  └ done") + "\n"
        error = dict_of(event.get("error"))
        message = str_of(error.get("message")) or str_of(event.get("output")) or "failed"
        if _NEEDS_CONFIRMATION in message or _DENIED_BY_POLICY.search(message):
            self.knowledge.deny(name, argument)
            why = "needs confirmation" if _NEEDS_CONFIRMATION in message else "denied by policy"
            return style.warning(f"  └ ⊘ {why}: not run") + "\n"
        return fold_error(message)

    def _result(self, event: dict[str, Any]) -> str:
        k = self.knowledge
        stats = dict_of(event.get("stats"))
        given, cached = count_of(stats.get("input_tokens")), count_of(stats.get("cached"))
        output = count_of(stats.get("output_tokens"))
        # "input" is the part not cached; older versions give only the total, cached included.
        fresh = count_of(stats["input"]) if "input" in stats else max(given - cached, 0)
        if given or cached or output or fresh:
            k.tokens = Tokens(input=fresh, output=output, cached=cached)
        k.model = _model_used(stats) or k.model
        if event.get("status") == "error":
            error = dict_of(event.get("error"))
            message = str_of(error.get("message")) or self._said or "gemini reported an error"
            kind = _TYPE_KINDS.get(str_of(error.get("type"))) or kind_of(message)
            k.fail(message, kind)
        k.working()  # no more retrying: this is the end
        seconds = float_of(stats.get("duration_ms"))
        calls = count_of(stats.get("tool_calls"))
        return self.conclude(
            k.failure,
            duration(seconds / 1000, precise=True) if seconds else "",
            f"{calls} tool call{'s' if calls != 1 else ''}" if calls else "",
            tokens_text(k.tokens),
        )

    def stderr(self, line: str) -> str:
        k = self.knowledge
        if (match := _ATTEMPT.search(line[:CLASSIFIED])) and _GAVE_UP not in line:
            _, _, error = line.partition("Error:")
            self._said = error.strip() or line.strip()
            if kind_of(self._said) is FailureKind.OFFLINE:  # no answer at all: "fetch failed"
                k.activity = Activity.OFFLINE
                k.activity_detail = f"cannot reach the API: attempt {match[1]} failed, retrying"
            else:
                status = f" (HTTP {match[2]})" if match[2] else ""
                k.activity = Activity.RETRYING
                k.activity_detail = f"attempt {match[1]} failed{status}, retrying"
            return style.warning(f"↻ {one_line(line, 200)}") + "\n"
        if _NEEDS_CONFIRMATION in line:  # the tool_result on stdout says it, as a denial
            return style.warning(line) + "\n"
        if kind_of(line) in (FailureKind.AUTH, FailureKind.UNTRUSTED_DIR, FailureKind.SESSION_GONE):
            self._said = line.strip()
            return style.error(line) + "\n"
        if re.match(r"\s*(\[ERROR\]|Error\b)", line):
            self._said = line.strip()
            return style.error(line) + "\n"
        return style.dim(line) + "\n"

    def ending(self) -> str:
        return self._flush() + super().ending()

    def exited(self, exit_code: int) -> None:
        k = self.knowledge
        if exit_code and self._said and kind_of(self._said) is FailureKind.SESSION_GONE:
            k.fail(self._said, FailureKind.SESSION_GONE)  # whatever code it exits with
            return
        kind = EXIT_KINDS.get(exit_code)
        if kind is None:
            if exit_code > 0 and k.failure is None and self._said:  # < 0: it was killed
                k.fail(self._said, kind_of(self._said))
            return
        if k.failure is None:
            k.fail(self._said or f"gemini exited {exit_code}: {_EXIT_WORDS[exit_code]}", kind)
        elif k.failure_kind in (None, FailureKind.OTHER):
            k.failure_kind = kind


HINTS = {
    FailureKind.AUTH: (
        "Set GEMINI_API_KEY (or GOOGLE_GENAI_USE_VERTEXAI or GOOGLE_GENAI_USE_GCA) for the "
        "agent, or run `gemini` once in a terminal to pick an auth method."
    ),
    FailureKind.UNTRUSTED_DIR: (
        "Trust the folder: run `gemini` there once and trust it, or give the agent "
        "--skip-trust (or GEMINI_CLI_TRUST_WORKSPACE=true)."
    ),
    FailureKind.OFFLINE: "Gemini cannot reach the Gemini API: check the network or the proxy.",
    FailureKind.INPUT: "Gemini rejected its input: check the prompt (a file it names with @).",
    FailureKind.CONFIG: "Gemini could not load its settings: fix ~/.gemini/settings.json.",
    FailureKind.SESSION_GONE: (
        "Gemini no longer has that session for this folder: start afresh with the same prompt."
    ),
    FailureKind.TURN_LIMIT: "The session hit its turn limit: raise model.maxSessionTurns.",
    FailureKind.TOOL: "A tool failed beyond repair (a full disk?): its error is in the log.",
    FailureKind.API: "The Gemini API refused the request: check the key's quota, or try later.",
}
NEEDED_CONFIRMATION = "Some tools needed confirmation: run it again with permission edit or full."


def hint(knowledge: Knowledge, exit_code: int | None) -> str | None:
    kind = knowledge.failure_kind or EXIT_KINDS.get(exit_code or 0)
    if kind is None and knowledge.activity is Activity.OFFLINE:
        kind = FailureKind.OFFLINE  # it cannot reach the API (still trying, or stopped so)
    if kind is not None:
        return HINTS.get(kind)
    return NEEDED_CONFIRMATION if knowledge.denials else None


def auth(executable: str, env: Mapping[str, str]) -> AuthState:
    """Gemini has no status command: an auth method comes from its environment variables, a
    selected type in ~/.gemini/settings.json, or a Google login kept in oauth_creds.json."""
    try:
        return _auth(env)
    except Exception:  # an unreadable home or settings file: no answer, never an error
        return AuthState.UNKNOWN


def _auth(env: Mapping[str, str]) -> AuthState:
    if any(env.get(name) for name in AUTH_VARIABLES) or any(
        env.get(name, "").lower() == "true" for name in AUTH_FLAGS
    ):
        return AuthState.LOGGED_IN
    home = Path(env["GEMINI_CLI_HOME"]) if env.get("GEMINI_CLI_HOME") else home_of(env)
    if home is None:
        return AuthState.UNKNOWN
    directory = home / ".gemini"
    if (
        _selected_auth_type(directory / "settings.json")
        or (directory / "oauth_creds.json").is_file()
    ):
        return AuthState.LOGGED_IN
    if env.get("GOOGLE_API_KEY"):  # a key, but it only counts with Vertex AI selected
        return AuthState.UNKNOWN
    return AuthState.NOT_LOGGED_IN


def _selected_auth_type(path: Path) -> str:
    """``security.auth.selectedType`` (or the older top-level ``selectedAuthType``)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    try:
        settings = dict_of(json.loads(text))
    except ValueError:  # settings.json may carry comments: look for the key itself
        match = re.search(r'"(?:selectedType|selectedAuthType)"\s*:\s*"([^"]+)"', text)
        return match[1] if match else ""
    selected = dict_of(dict_of(settings.get("security")).get("auth")).get("selectedType")
    return str_of(selected) or str_of(settings.get("selectedAuthType"))


FORMAT = Format(
    "gemini-stream-json",
    structured=True,
    # These hold only in a folder gemini trusts (the preset passes --skip-trust): elsewhere,
    # headless, it exits 55, and it forces any approval mode back to "default" besides.
    permissions={
        Permission.READ_ONLY: ("--approval-mode", "plan"),
        Permission.EDIT: ("--approval-mode", "auto_edit"),
        Permission.FULL: ("--approval-mode", "yolo"),
    },
    reducer=GeminiReducer,
    hint=hint,
    auth=auth,
    resume=lambda session: ("--resume", session or ""),
)

__all__ = ["FORMAT", "GeminiReducer", "auth", "hint", "key_argument", "kind_of"]
