"""Aider (text only): stdout and stderr arrive merged, one line at a time, all as ``stdout``.

What its output says (Aider 0.86.2; aider/coders/base_coder.py, aider/onboarding.py,
aider/exceptions.py; scenarios in tests/fakes/streams/aider-*):

- ``Main model: X with diff edit format, …`` (``Model: X with …`` when there is no weak model).
- After each model call: ``Tokens: 2.3k sent, 1.2k cache write, 4k cache hit, 120 received.``
  (kept as aider counts them: input = sent, which includes the cache writes; cached = hits)
  and, for a model with known prices, ``Cost: $0.0012 message, $0.0034 session.`` (on the same
  line, or the next one when both cache figures are there). Counts are rounded (``2.3k``).
- ``Applied edit to hello.py``, ``Commit 1a2b3c4 feat: …``.
- A model call that fails: ``litellm.InternalServerError: …`` and a sentence (``The API
  provider's servers are down or overloaded.``); ``Retrying in 0.5 seconds...`` when it will
  try again. When it gives up it still exits 0: the failure is concluded at exit.
- No key at all: ``Please open this URL in your browser to connect Aider with OpenRouter:``,
  the URL, ``Waiting up to 5 minutes for you to finish in the browser...`` (it listens on
  localhost:8484 meanwhile).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aios.agents.formats import aider_chat
from aios.agents.formats.aider_chat import Chat
from aios.agents.formats.base import (
    AuthState,
    Format,
    Knowledge,
    Reducer,
    SessionStart,
    TwoWay,
    float_of,
    outcome,
    style,
    tool_call,
)
from aios.agents.formats.checks import home_of
from aios.runs import Activity, FailureKind, Permission, Tokens

_SGR = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_MODEL = re.compile(r"^(?:Main model|Model): (\S+) with ")
_COUNT = r"(\d+(?:\.\d+)?[kKmM]?)"
_TOKENS = re.compile(
    rf"Tokens: {_COUNT} sent(?:, {_COUNT} cache write)?(?:, {_COUNT} cache hit)?, "
    rf"{_COUNT} received"
)
_COST = re.compile(r"Cost: \$(\d+(?:\.\d+)?) message, \$(\d+(?:\.\d+)?) session")
_COMMIT = re.compile(r"^Commit [0-9a-f]{7,40} ")
_LITELLM = re.compile(r"\blitellm\.(\w+):")
_RETRYING = re.compile(r"^Retrying in ([\d.]+) seconds")
_BROWSER = "Please open this URL in your browser to connect Aider with OpenRouter"
_WAITING = re.compile(r"Waiting up to (\d+) minutes? for you to finish in the browser")
_LOGIN_FAILED = (
    "OpenRouter authentication did not complete successfully",
    "Authentication with OpenRouter failed",
    "OAuth flow interrupted",
)
_NO_KEYS = "No LLM model was specified and no API keys were provided"
_DIM = re.compile(
    r"^(Aider v|Weak model:|Editor model:|Git repo:|Repo-map:|Use /help|Added .* to the chat)"
)
# aider's own sentence for a failed model call (aider/exceptions.py).
_DESCRIPTIONS = {
    "The API provider's servers are down or overloaded": FailureKind.API,
    "The API provider is not able to authenticate you": FailureKind.AUTH,
    "Permission was denied. Check your API key": FailureKind.AUTH,
    "The API provider has rate limited you": FailureKind.API,
    "The API provider timed out without returning a response": FailureKind.OFFLINE,
    "The API provider has refused the request": FailureKind.API,
}
# Environment variables that give aider a model to talk to (aider/onboarding.py and its
# --api-key PROVIDER=KEY spelling of PROVIDER_API_KEY).
KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "VERTEXAI_PROJECT",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "XAI_API_KEY",
    "COHERE_API_KEY",
    "AZURE_API_KEY",
    "AIDER_OPENAI_API_KEY",
    "AIDER_ANTHROPIC_API_KEY",
    "AIDER_API_KEY",
)


def kind_of_error(name: str) -> FailureKind:
    """A litellm exception class name → what kind of failure it is."""
    if name in ("AuthenticationError", "PermissionDeniedError"):
        return FailureKind.AUTH
    if name in ("APIConnectionError", "Timeout"):
        return FailureKind.OFFLINE
    if name in ("NotFoundError", "BadRequestError"):
        return FailureKind.CONFIG  # mostly a model name the provider does not know
    return FailureKind.API


def tokens_count(text: str) -> int:
    """``120`` → 120, ``2.3k`` → 2300, ``1.5M`` → 1500000 (aider rounds what it prints)."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        return round(float(text.rstrip("kKmM")) * scale)
    except (ValueError, OverflowError):  # not a number; or so many digits it is infinite
        return 0


class AiderReducer(Reducer):
    def __init__(self) -> None:
        super().__init__()
        # A model call that failed, not yet followed by one that worked: (words, kind, class).
        self._pending: tuple[str, FailureKind, str] | None = None
        self._exit_code: int | None = None
        self.chat = Chat(self.knowledge)  # a two-way session's side (aider_chat.py)

    # -- a two-way session: its conversation is the chat's to keep -----------------------------

    def open(self, start: SessionStart) -> list[str]:
        return self.chat.open(start.prompt)

    def say(self, text: str) -> list[str]:
        return self.chat.say(text)

    def reply(self, approval_id: str, allow: bool, message: str, always: bool) -> list[str]:
        return self.chat.reply(approval_id, allow, message, always)

    def finish(self) -> list[str] | None:
        return self.chat.finish()

    def partial(self, tail: str) -> None:
        self.outbox.extend(self.chat.partial(_SGR.sub("", tail)))

    # -- what its output says ------------------------------------------------------------------

    def stdout(self, line: str) -> str:
        if self.two_way:  # the question or prompt this line completes is not news
            line = self.chat.line(_SGR.sub("", line))
        plain = _SGR.sub("", line).strip()
        if not plain:
            return line + "\n" if line else "\n"
        k = self.knowledge
        if match := _MODEL.match(plain):
            k.model = match[1]
            k.working()
            return style.dim(line) + "\n"
        shown = ""
        if match := _TOKENS.search(plain):
            # The cache writes are part of "sent" already (aider adds them to it).
            sent, _writes, hit, received = (tokens_count(g) if g else 0 for g in match.groups())
            k.tokens = (k.tokens or Tokens()) + Tokens(input=sent, output=received, cached=hit)
            self._pending = None
            k.working()
            shown = style.dim(line) + "\n"
        if match := _COST.search(plain):
            cost = float_of(float(match[2]))  # a thousand digits make inf
            k.cost_usd = k.cost_usd if cost is None else cost
            shown = shown or style.dim(line) + "\n"
        if shown:
            return shown
        return self._other(line, plain)

    def _other(self, line: str, plain: str) -> str:
        for read in (self._model_call, self._login, self._change):
            shown = read(line, plain)
            if shown is not None:
                return shown
        if _DIM.match(plain):
            return style.dim(line) + "\n"
        if plain.startswith(("Error", "Traceback")):
            return style.error(line) + "\n"
        if plain.startswith("Warning"):
            return style.warning(line) + "\n"
        if self.knowledge.activity is not Activity.NEEDS_LOGIN:
            self.knowledge.working()  # the model's reply, streaming: the run is moving
        return line + "\n"

    def _model_call(self, line: str, plain: str) -> str | None:
        """A failed model call, aider's sentence about it, and its retry."""
        if match := _LITELLM.search(plain):
            self._pending = (plain, kind_of_error(match[1]), match[1])
            return style.error(line) + "\n"
        sentence = next((s for s in _DESCRIPTIONS if plain.startswith(s)), None)
        if sentence is not None:
            name = self._pending[2] if self._pending else ""
            kind = self._pending[1] if self._pending else _DESCRIPTIONS[sentence]
            self._pending = (f"{plain} (litellm.{name})" if name else plain, kind, name)
            return style.error(line) + "\n"
        if match := _RETRYING.match(plain):
            what = self._pending[2] if self._pending and self._pending[2] else "API error"
            self.knowledge.activity = Activity.RETRYING
            self.knowledge.activity_detail = f"{what}, retrying in {match[1]} s"
            return style.warning(line) + "\n"
        return None

    def _login(self, line: str, plain: str) -> str | None:
        """No key: aider offers an OpenRouter login in a browser, and waits for it."""
        k = self.knowledge
        if plain.startswith(_BROWSER):
            k.activity = Activity.NEEDS_LOGIN
            k.activity_detail = "waiting for a browser login it cannot finish here"
        elif match := _WAITING.search(plain):
            k.activity = Activity.NEEDS_LOGIN
            k.activity_detail = (
                f"waiting up to {match[1]} min for a browser login it cannot finish here"
            )
        elif plain.startswith(_LOGIN_FAILED):
            k.fail(plain, FailureKind.AUTH)
            return style.error(line) + "\n"
        elif plain.startswith(_NO_KEYS):
            self._pending = (plain, FailureKind.AUTH, "")
        else:
            return None
        return style.warning(line) + "\n"

    def _change(self, line: str, plain: str) -> str | None:
        """What aider did to the repository: an edit applied, a commit made."""
        if plain.startswith("Applied edit to "):
            self._pending = None
            self.knowledge.working()
            return tool_call("Edit", plain.removeprefix("Applied edit to "))
        if _COMMIT.match(plain):
            self.knowledge.working()
            return tool_call("Commit", plain.removeprefix("Commit "))
        return None

    def exited(self, exit_code: int) -> None:
        self._exit_code = exit_code
        # aider exits 0 after a model call that failed for good: that is a failed run.
        if self._pending and self.knowledge.failure is None and exit_code >= 0:
            words, kind, _ = self._pending
            self.knowledge.fail(words, kind)

    def ending(self) -> str:
        k, code = self.knowledge, self._exit_code
        if k.failure is None and code:  # no words for it: the exit code says it all
            return outcome(f"aider exited {code}" if code > 0 else f"aider ended by signal {-code}")
        t = k.tokens
        hits = f" ({t.cached:,} cache hits)" if t and t.cached else ""
        return outcome(
            k.failure,
            f"{t.input:,} tokens sent{hits}, {t.output:,} received" if t else "",
            f"${k.cost_usd:.4f}" if k.cost_usd else "",
        )


# One story for the login, live and at the end: aider offers a browser login (OpenRouter's) that
# cannot finish under AIOS, and the way out is a key.
KEYS = "an API key (OPENROUTER_API_KEY, ANTHROPIC_API_KEY, OPENAI_API_KEY …) and a --model"
LOGIN_WAIT = f"Stop it and give the agent {KEYS}: aider cannot finish a browser login here."
HINTS = {
    FailureKind.AUTH: f"Give the agent {KEYS}: aider cannot finish a browser login here.",
    FailureKind.OFFLINE: "Aider cannot reach the model provider: check the network or the proxy.",
    FailureKind.CONFIG: "The provider does not take that request: check the --model name.",
    FailureKind.API: "The model provider kept failing: check the key's credit, or try later.",
}


def hint(knowledge: Knowledge, exit_code: int | None) -> str | None:
    kind = knowledge.failure_kind
    if exit_code is None and knowledge.activity is Activity.NEEDS_LOGIN:
        return LOGIN_WAIT  # still waiting: the way out starts with stopping it
    if kind is None and knowledge.activity is Activity.NEEDS_LOGIN:
        kind = FailureKind.AUTH  # stopped while it waited for a browser login
    return HINTS.get(kind) if kind is not None else None


def auth(executable: str, env: Mapping[str, str]) -> AuthState:
    """Aider has no status command: a provider key in the environment means it can work; a
    config or .env file in the home directory may hold one (unknown); else it has none."""
    try:
        if any(env.get(name) for name in KEY_VARIABLES) or any(
            name.endswith("_API_KEY") and name.startswith("AIDER_") and value
            for name, value in env.items()
        ):
            return AuthState.LOGGED_IN
        home = home_of(env)
        if home is None:
            return AuthState.UNKNOWN
        if (home / ".aider.conf.yml").is_file() or (home / ".env").is_file():
            return AuthState.UNKNOWN
        return AuthState.NOT_LOGGED_IN
    except Exception:  # an unreadable home: no answer, never an error
        return AuthState.UNKNOWN


TWO_WAY = TwoWay(
    args=aider_chat.ARGS,
    how="its chat and its yes/no questions on stdin, one line each",
    command=aider_chat.command,
    permissions=aider_chat.PERMISSIONS,
)

FORMAT = Format(
    "aider",
    structured=False,
    permissions={
        Permission.READ_ONLY: ("--dry-run", "--yes-always", "--no-suggest-shell-commands"),
        Permission.EDIT: ("--yes-always", "--no-suggest-shell-commands"),
        Permission.FULL: ("--yes-always",),
    },
    reducer=AiderReducer,
    hint=hint,
    auth=auth,
    # aider keeps its chat history in the directory (.aider.chat.history.md): no session id.
    resume=lambda session: ("--restore-chat-history",),
    needs_session=False,
    two_way=TWO_WAY,
)

__all__ = ["FORMAT", "AiderReducer", "auth", "hint", "tokens_count"]
