"""Settings and agent definitions: built-in presets, overridden or extended by ``config.toml``.

The file is optional and only ever read. Nothing wrong in it stops the daemon: each mistake
becomes a :class:`ConfigProblem` (with a line number when one can be found) and the setting keeps
its default or the agent is left out, so a typo costs one agent, not the whole service.
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, Literal

from aios import template
from aios.agents.formats import FORMATS, Format
from aios.hooks.spec import EVENTS as HOOK_EVENTS
from aios.hooks.spec import FORMATS as HOOK_FORMATS
from aios.hooks.spec import Hook
from aios.runs import Permission
from aios.template import END_OF_OPTIONS, PERMISSION, PROMPT, RESUME

AGENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SECONDS = 3600.0  # for stop_timeout and start_seconds
MAX_RESTARTS = 100


class RestartPolicy(StrEnum):
    NO = "no"
    ON_FAILURE = "on-failure"


def _no_env() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class AgentDef:
    name: str
    # The argv template (aios.template): "{prompt}", "--flag={prompt}" and "{permission}" are
    # replaced; everything else is passed as written. Never a shell string.
    command: tuple[str, ...]
    source: Literal["preset", "config"]
    description: str = ""
    cwd: str | None = None  # default working directory, as written: ``~`` is not expanded here
    # Read-only, and left out of the hash (a mapping is not hashable) but not out of equality.
    env: Mapping[str, str] = field(default_factory=_no_env, hash=False)
    stop_timeout: float = 10.0  # seconds between SIGTERM and SIGKILL
    restart: RestartPolicy = RestartPolicy.NO
    max_restarts: int = 5
    # A process that exits sooner than this after it was spawned failed to start (supervisord's
    # startsecs): the run is ``running`` only once it has stayed up this long.
    start_seconds: float = 1.0
    # How its output is read (aios.agents.formats): "text" keeps it as it came.
    format: str = "text"
    # Seconds without any output after which a running agent counts as stalled (0: never).
    stall_after: float = 120.0
    # "ask": hold a two-way session where the user allows or denies each tool the agent asks
    # for, and can send follow-ups (formats that can: claude); "never": one prompt, headless.
    approvals: Literal["never", "ask"] = "never"
    approval_timeout: float = 0.0  # seconds after which an unanswered request is denied (0: never)
    label: str = ""  # human name, e.g. "Claude Code"
    # Each run works in a git worktree of its own unless the launch says otherwise.
    worktree: bool = False

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError(f"agent {self.name!r} has an empty command")
        if self.format not in FORMATS:
            raise ValueError(f"agent {self.name!r} has an unknown format {self.format!r}")
        # Copy, so a caller mutating the dict it passed in cannot change a frozen definition.
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def executable(self) -> str:
        return self.command[0]

    @property
    def setup(self) -> Setup | None:
        """How to install and sign in its CLI, when it runs one AIOS knows (by executable name,
        so an agent of your own that runs ``claude`` gets claude's, and an override of the claude
        preset that runs a wrapper does not)."""
        return SETUP.get(PurePath(self.executable()).name)

    @property
    def output(self) -> Format:
        return FORMATS[self.format]

    @property
    def takes_prompt(self) -> bool:
        return template.takes_prompt(self.command)

    @property
    def permissions(self) -> tuple[Permission, ...]:
        """The permissions a run may choose; empty when the agent has no permission modes."""
        modes = self.output.permissions
        return tuple(modes) if modes is not None and PERMISSION in self.command else ()

    @property
    def default_permission(self) -> Permission | None:
        return Permission.EDIT if Permission.EDIT in self.permissions else None

    @property
    def can_resume(self) -> bool:
        """Whether a run of it can be continued (its CLI resumes sessions, its command says
        where: ``{resume}``)."""
        return self.output.resume is not None and RESUME in self.command

    @property
    def two_way(self) -> bool:
        """Whether its runs hold a conversation on stdin (``approvals = "ask"``)."""
        return self.approvals == "ask" and self.output.two_way is not None

    def argv(
        self,
        prompt: str,
        permission: Permission | None = None,
        *,
        resume: str | None = None,
    ) -> list[str]:
        """The command with its placeholders replaced (aios.template); never a shell string.

        ``resume``: the session to resume ("" for a CLI that needs no id), or None for a new one.
        """
        output = self.output
        modes = output.permissions or {}
        chosen = permission or self.default_permission
        flags = modes.get(chosen, ()) if chosen is not None else ()
        resuming = output.resume(resume or None) if resume is not None and output.resume else ()
        two_way = output.two_way.args if self.two_way and output.two_way else None
        return template.expand(self.command, prompt, flags, resuming, two_way)

    def availability(self, path: str | None = None) -> tuple[bool, str | None]:
        """Whether the executable can be started here: ``(True, None)`` or ``(False, why)``.

        ``path`` is a PATH value to search instead of the environment's (tests use it).
        """
        exe = self.executable()
        if os.sep in exe or (os.altsep is not None and os.altsep in exe):
            # Written as a path, so PATH is not searched; a relative one is taken from the
            # agent's working directory, where it will be started.
            target = Path(exe)
            if not target.is_absolute() and self.cwd is not None:
                target = Path(self.cwd).expanduser() / target
            if not target.is_file():
                return False, f"'{exe}' does not exist"
            if not os.access(target, os.X_OK):
                return False, f"'{exe}' is not executable"
            return True, None
        if shutil.which(exe, path=path) is None:
            return False, f"'{exe}' not found on PATH"
        return True, None

    def to_json(self, path: str | None = None) -> dict[str, object]:
        available, reason = self.availability(path)
        return {
            "name": self.name,
            "label": self.label or self.name,
            "command": list(self.command),
            "description": self.description,
            "source": self.source,
            "available": available,
            "unavailable_reason": reason,
            "cwd": self.cwd,
            # Names only: values are whatever the user wrote, API keys included.
            "env": sorted(self.env),
            "stop_timeout": self.stop_timeout,
            "restart": str(self.restart),
            "max_restarts": self.max_restarts,
            "start_seconds": self.start_seconds,
            "stall_after": self.stall_after,
            "worktree": self.worktree,
            "format": self.format,
            "approvals": self.approvals,
            "approval_timeout": self.approval_timeout,
            "can_continue": self.can_resume,
            "permissions": [str(p) for p in self.permissions],
            "default_permission": str(self.default_permission or "") or None,
            "takes_prompt": self.takes_prompt,
            "install_hint": self.setup.install_hint if self.setup else None,
            "login_hint": self.setup.login if self.setup else None,
        }


def _preset(name: str, label: str, description: str, output: str, *command: str) -> AgentDef:
    return AgentDef(name, command, "preset", description=description, label=label, format=output)


# One table, so supporting another agent or a changed invocation never touches the supervisor;
# what each CLI's output means lives in aios.agents.formats. Each runs one prompt
# non-interactively, in its machine-readable mode where it has one, and exits; "--" (or aider's
# "--message=") keeps a prompt that starts with "-" a prompt; "{permission}" becomes the CLI's
# own flags for the run's permission (read-only, edit, full).
PRESETS: tuple[AgentDef, ...] = (
    _preset(
        "claude", "Claude Code", "Anthropic's coding agent", "claude-stream-json",
        "claude", "-p", "--output-format", "stream-json", "--verbose", PERMISSION, RESUME,
        END_OF_OPTIONS, PROMPT,
    ),
    _preset(
        "codex", "Codex CLI", "OpenAI's coding agent", "codex-json",
        "codex", "exec", "--json", PERMISSION, RESUME, END_OF_OPTIONS, PROMPT,
    ),
    # --no-analytics: with no terminal aider answers its own opt-in question "yes", which is not
    # ours to give; --no-check-update: no network call of its own at every start.
    _preset(
        "aider", "Aider", "AI pair programming", "aider",
        "aider", "--no-analytics", "--no-check-update", PERMISSION, RESUME, "--message={prompt}",
    ),
    # --skip-trust: a logged-in gemini otherwise refuses (exit 55) every directory it has not
    # been told to trust, and AIOS launches it in whatever directory the user picked.
    # --prompt=: gemini 0.61 drops whatever follows "--", so the prompt is spliced after "=".
    _preset(
        "gemini", "Gemini CLI", "Google's coding agent", "gemini-stream-json",
        "gemini", "--skip-trust", "-o", "stream-json", PERMISSION, RESUME, "--prompt={prompt}",
    ),
    # The one preset that does use a shell: the prompt *is* the command line the user typed.
    _preset(
        "command", "Command", "Run the prompt as a shell command line", "text",
        "sh", "-c", END_OF_OPTIONS, PROMPT,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Setup:
    """How to install one CLI and sign it in: what "unavailable" and "not logged in" point to.

    ``login`` names the key variables the daemon must inherit: an agent gets the daemon's own
    environment, fixed when AIOS started (see the README's first real agent run).
    """

    label: str
    install: str  # one command line
    login: str

    @property
    def install_hint(self) -> str:
        return f"install {self.label}: {self.install}"


# Next to PRESETS, keyed by executable rather than by preset name: a hint belongs to the program
# that is missing. Versions AIOS was verified against are in docs/agents.md.
_RESTART = "where AIOS starts (~/.profile), then restart AIOS"
SETUP: Mapping[str, Setup] = MappingProxyType(
    {
        "claude": Setup(
            "Claude Code",
            "npm install -g @anthropic-ai/claude-code",
            f"run `claude auth login` in a terminal, or set ANTHROPIC_API_KEY {_RESTART}",
        ),
        "codex": Setup(
            "Codex CLI",
            "npm install -g @openai/codex",
            f"run `codex login` in a terminal, or set CODEX_API_KEY {_RESTART}",
        ),
        "gemini": Setup(
            "Gemini CLI",
            "npm install -g @google/gemini-cli",
            f"set GEMINI_API_KEY {_RESTART}, or run `gemini` in a terminal and log in with Google",
        ),
        "aider": Setup(
            "Aider",
            "pipx install aider-chat",
            "set the key of your model's provider (OPENAI_API_KEY, ANTHROPIC_API_KEY, "
            f"OPENROUTER_API_KEY, GEMINI_API_KEY …) {_RESTART}",
        ),
    }
)


@dataclass(frozen=True)
class Setting:
    """One top-level setting; the docs and the settings page are generated from these."""

    name: str
    default: int
    help: str
    minimum: int
    maximum: int
    label: str  # as the settings page shows it

    def check(self, value: object) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        try:
            _integer(self.name, value, self.minimum, self.maximum)
        except _Invalid as exc:
            return exc.message
        return None


SETTINGS: tuple[Setting, ...] = (
    Setting("max_concurrent", 4, "runs beyond this wait in a queue", 1, 64, "Runs at once"),
    Setting(
        "retention", 1000, "finished runs kept in history; older ones are pruned", 10, 1_000_000,
        "Runs kept in history",
    ),
    Setting(
        "log_cap_mib", 50, "per-run output kept on disk; later output is dropped with a marker",
        1, 10_240, "Log size cap (MiB)",
    ),
)  # fmt: skip
_SETTINGS = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    # Defaults come from SETTINGS so they are written down once.
    max_concurrent: int = _SETTINGS["max_concurrent"].default
    retention: int = _SETTINGS["retention"].default
    log_cap_mib: int = _SETTINGS["log_cap_mib"].default


@dataclass(frozen=True)
class ConfigProblem:
    path: Path
    line: int | None
    message: str
    # A warning leaves the setting or agent in use; an error leaves it out.
    warning: bool = False

    def __str__(self) -> str:
        where = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {'warning: ' if self.warning else ''}{self.message}"


@dataclass(frozen=True)
class Config:
    settings: Settings
    # Presets in table order, then agents new in the file in file order; a config agent with a
    # preset's name takes its place.
    agents: Mapping[str, AgentDef] = field(hash=False)
    problems: tuple[ConfigProblem, ...]
    path: Path
    # The [[hooks]] tables that are valid, in file order (aios.hooks).
    hooks: tuple[Hook, ...] = ()

    def agent(self, name: str) -> AgentDef | None:
        return self.agents.get(name)


def load_config(path: Path) -> Config:
    """Read ``path``; never raises for anything in the file and never writes to it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _defaults(path)  # no file is the normal case: defaults work without one
    except OSError as exc:
        return _defaults(path, ConfigProblem(path, None, f"cannot read it ({exc.strerror or exc})"))
    data = data.removeprefix(codecs.BOM_UTF8)  # some Windows editors add one
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return _defaults(path, ConfigProblem(path, line, "not valid UTF-8 (TOML must be)"))
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return _defaults(path, _syntax_problem(path, text, exc))
    except RecursionError:  # Python 3.11's tomllib recurses once per nested array or table
        return _defaults(path, ConfigProblem(path, None, "TOML syntax error: nested too deeply"))
    return _Loader(path, text).load(document)


def _defaults(path: Path, *problems: ConfigProblem) -> Config:
    agents = MappingProxyType({agent.name: agent for agent in PRESETS})
    return Config(Settings(), agents, problems, path)


def _syntax_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
    # tomllib only reports its position inside the message text.
    message = str(exc)
    if found := re.search(r" \(at line (\d+), column \d+\)$", message):
        return ConfigProblem(path, int(found[1]), f"TOML syntax error: {message[: found.start()]}")
    line = text.rstrip("\n").count("\n") + 1 if "at end of document" in message else None
    return ConfigProblem(path, line, f"TOML syntax error: {message}")


class _Invalid(Exception):
    """A field value that cannot be used; ``key`` narrows where it is (an env variable)."""

    def __init__(self, message: str, *key: str) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


_LIST_HINT = 'an argv list like ["pytest", "-x"]'


def _command(full: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise _Invalid(f"{full} must be {_LIST_HINT}, not a shell string")
    if not isinstance(value, list) or not all(map(_is_arg, value)) or not value or not value[0]:
        raise _Invalid(f"{full} must be a non-empty list of strings")
    return tuple(value)


def _text(full: str, value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{full} must be a string, not {_show(value)}")
    return value


def _cwd(full: str, value: object) -> str:
    if not (text := _text(full, value)):
        raise _Invalid(f"{full} must not be empty")
    return text


def _env(full: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f'{full} must be a table of strings, like {{ PYTHONUNBUFFERED = "1" }}')
    for key, item in value.items():
        if not key or "=" in key or "\0" in key:
            raise _Invalid(f"{full} has an invalid variable name {key!r}", key)
        if not _is_arg(item):
            raise _Invalid(f"{full}.{key} must be a string, not {_show(item)}", key)
    return value


def _seconds(full: str, value: object, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{full} must be a number of seconds, not {_show(value)}")
    # The comparisons also refuse nan and inf, which TOML allows.
    low_ok = value >= 0 if zero else value > 0
    if not low_ok or not value <= MAX_SECONDS:
        floor = "at least 0" if zero else "above 0"
        raise _Invalid(f"{full} must be {floor} and at most {MAX_SECONDS:g}, not {value}")
    return float(value)


def _choice(full: str, value: object, choices: Mapping[str, object]) -> str:
    if not isinstance(value, str) or value not in choices:
        names = " | ".join(f'"{name}"' for name in choices)
        raise _Invalid(f"{full} must be one of {names}, not {_show(value)}")
    return value


def _boolean(full: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{full} must be true or false, not {_show(value)}")
    return value


def _restart(full: str, value: object) -> RestartPolicy:
    if not isinstance(value, str) or value not in {str(policy) for policy in RestartPolicy}:
        raise _Invalid(f'{full} must be "no" or "on-failure", not {_show(value)}')
    return RestartPolicy(value)


# The keys an [agents.NAME] table may hold, each with what checks and converts its value.
_AGENT_FIELDS: dict[str, Callable[[str, object], object]] = {
    "command": _command,
    "cwd": _cwd,
    "description": _text,
    "label": _text,
    "env": _env,
    "stop_timeout": _seconds,
    "start_seconds": lambda full, value: _seconds(full, value, zero=True),
    "stall_after": lambda full, value: _seconds(full, value, zero=True),
    "format": lambda full, value: _choice(full, value, FORMATS),
    "approvals": lambda full, value: _choice(full, value, {"never": 0, "ask": 0}),
    "approval_timeout": lambda full, value: _seconds(full, value, zero=True),
    "restart": _restart,
    "max_restarts": lambda full, value: _integer(full, value, 0, MAX_RESTARTS),
    "worktree": _boolean,
}


def _events(full: str, value: object) -> frozenset[str]:
    names = " | ".join(f'"{name}"' for name in HOOK_EVENTS)
    if not isinstance(value, list) or not value:
        raise _Invalid(f'{full} must be a non-empty list of events, like ["failed"], from {names}')
    for item in value:
        if item not in HOOK_EVENTS:
            hint = _suggest(item, [*HOOK_EVENTS]) if isinstance(item, str) else ""
            raise _Invalid(f"{full}: unknown event {_show(item)}{hint}; events are {names}")
    return frozenset(value)


def _agent_names(full: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Invalid(f'{full} must be a list of agent names, like ["claude"]')
    for item in value:
        if not AGENT_NAME.fullmatch(item):
            raise _Invalid(f"{full}: {item!r} is not an agent name")
    return frozenset(value)


MAX_URL = 2048


def _url(full: str, value: object) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415 - only for a file with hooks

    url = _text(full, value)
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise _Invalid(f"{full} must be an address with no spaces, at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise _Invalid(f"{full} is not a valid address: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"{full} must be an http:// or https:// address with a host")
    return url


# Headers http.client sets from the request itself; one written by hand would contradict it.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _headers(full: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f'{full} must be a table of strings, like {{ Priority = "high" }}')
    for key, item in value.items():
        if not _TOKEN.fullmatch(key) or key.lower() in _OWN_HEADERS:
            raise _Invalid(f"{full} cannot set a header named {key!r}", key)
        if not isinstance(item, str) or any(c in item for c in "\r\n\0"):
            raise _Invalid(f"{full}.{key} must be a one-line string", key)
        try:
            item.encode("latin-1")
        except UnicodeEncodeError:
            raise _Invalid(f"{full}.{key} must be Latin-1 text (HTTP headers are)", key) from None
    return value


# The keys a [[hooks]] table may hold (aios.hooks.spec.Hook).
_HOOK_FIELDS: dict[str, Callable[[str, object], object]] = {
    "on": _events,
    "agents": _agent_names,
    "command": _command,
    "url": _url,
    "timeout": _seconds,
    "headers": _headers,
    "format": lambda full, value: _choice(full, value, dict.fromkeys(HOOK_FORMATS)),
}


class _Loader:
    """Validates a parsed document; every mistake becomes a problem, never an exception."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _key_lines(text)
        self.problems: list[ConfigProblem] = []

    def problem(self, key: tuple[str, ...], message: str, *, warning: bool = False) -> None:
        # tomllib gives no positions; use the line of the key, or of the nearest enclosing table.
        while key and key not in self.lines:
            key = key[:-1]
        self.problems.append(ConfigProblem(self.path, self.lines.get(key), message, warning))

    def load(self, document: dict[str, Any]) -> Config:
        values: dict[str, int] = {}
        for key, value in document.items():
            if key in ("agents", "hooks"):
                continue
            if (setting := _SETTINGS.get(key)) is None:
                self.problem((key,), f"unknown setting {key!r}{_suggest(key, [*_SETTINGS])}")
            elif (message := setting.check(value)) is not None:
                self.problem((key,), message)
            else:
                values[key] = value
        agents = {agent.name: agent for agent in PRESETS}
        tables = document.get("agents", {})
        if not isinstance(tables, dict):
            self.problem(("agents",), "agents must be a table, with one [agents.NAME] per agent")
            tables = {}
        for name, table in tables.items():
            if (agent := self.agent(name, table, agents.get(name))) is not None:
                agents[name] = agent
        hooks = self.hooks(document.get("hooks", []), agents)
        # In file order, so they read like an editor's error list.
        problems = tuple(sorted(self.problems, key=lambda problem: problem.line or 0))
        return Config(Settings(**values), MappingProxyType(agents), problems, self.path, hooks)

    def hooks(self, tables: object, agents: Mapping[str, AgentDef]) -> tuple[Hook, ...]:
        if not isinstance(tables, list):
            self.problem(("hooks",), "hooks must be an array of tables: write [[hooks]] per hook")
            return ()
        hooks = []
        for index, table in enumerate(tables):
            if (hook := self.hook(index, table, agents)) is not None:
                hooks.append(hook)
        return tuple(hooks)

    def hook(self, index: int, table: object, agents: Mapping[str, AgentDef]) -> Hook | None:
        where, name = ("hooks", str(index)), f"hooks[{index + 1}]"
        if not isinstance(table, dict):
            self.problem(where, f"{name} must be a table: write [[hooks]] and its keys under it")
            return None
        before = len(self.problems)
        values: dict[str, Any] = {}
        for key, value in table.items():
            if (check := _HOOK_FIELDS.get(key)) is None:
                hint = _suggest(key, [*_HOOK_FIELDS])
                self.problem((*where, key), f"unknown key {key!r} in {name}{hint}")
                continue
            try:
                values[key] = check(f"{name}.{key}", value)
            except _Invalid as exc:
                self.problem((*where, key, *exc.key), exc.message)
        if "on" not in table:
            events = ", ".join(HOOK_EVENTS)
            self.problem(where, f"{name}.on is missing: give a list of events from {events}")
        if ("command" in table) == ("url" in table):
            self.problem(where, f"{name} needs exactly one of command (an argv list) and url")
        elif "command" in table:
            for key in ("headers", "format"):
                if key in table:
                    self.problem((*where, key), f"{name}.{key} is for url hooks, not commands")
        if any(not p.warning for p in self.problems[before:]):
            return None  # left out rather than run a guess at what was meant
        for agent in sorted(values.get("agents") or ()):
            if agent not in agents:
                self.problem(
                    (*where, "agents"),
                    f"{name}.agents: no agent is named {agent!r}{_suggest(agent, [*agents])}",
                    warning=True,
                )
        return Hook(number=index + 1, **values)

    def agent(self, name: str, table: object, preset: AgentDef | None) -> AgentDef | None:
        where = ("agents", name)
        if not AGENT_NAME.fullmatch(name):
            self.problem(where, f"agent name {name!r} is invalid: use 1-64 of A-Z a-z 0-9 _ . -")
            return None
        if not isinstance(table, dict):
            self.problem(where, f"agents.{name} must be a table of agent settings")
            return None
        before = len(self.problems)
        values: dict[str, Any] = {}
        for key, value in table.items():
            if (check := _AGENT_FIELDS.get(key)) is None:
                hint = _suggest(key, [*_AGENT_FIELDS])
                self.problem((*where, key), f"unknown key {key!r} in agents.{name}{hint}")
                continue
            try:
                values[key] = check(f"agents.{name}.{key}", value)
            except _Invalid as exc:
                self.problem((*where, key, *exc.key), exc.message)
        if "command" not in table and preset is None:
            self.problem(where, f"agents.{name}.command is missing: give {_LIST_HINT}")
        if any(not p.warning for p in self.problems[before:]):
            return None  # skip the whole agent rather than run a guess at what was meant
        if preset is not None:  # overriding a preset: what the file leaves out is inherited
            agent = replace(preset, source="config", **values)
        else:
            agent = AgentDef(name=name, source="config", **values)
        return self.check_command(agent)

    def check_command(self, agent: AgentDef) -> AgentDef | None:
        key = ("agents", agent.name, "command")
        if PERMISSION in agent.command and agent.output.permissions is None:
            self.problem(
                key,
                f'agents.{agent.name}.command has "{{permission}}", but format '
                f"{agent.format!r} has no permission modes (give a format that has)",
            )
            return None
        if agent.approvals == "ask" and agent.output.two_way is None:
            self.problem(
                ("agents", agent.name, "approvals"),
                f'agents.{agent.name}.approvals = "ask" needs a format that can hold a '
                f"conversation (claude-stream-json), not {agent.format!r}",
            )
            return None
        two_way = agent.output.two_way
        if agent.approvals == "ask" and two_way and not _holds_session(agent.command, two_way.args):
            # expand() puts the two-way arguments where "{prompt}" is: without that element the
            # CLI would get an open stdin of JSON lines it was never told to read.
            self.problem(
                ("agents", agent.name, "approvals"),
                f'agents.{agent.name}.approvals = "ask" is ignored: a two-way session needs a '
                'whole "{prompt}" element in the command, which it replaces with '
                f'"{" ".join(two_way.args)}" (the prompt then goes in on stdin); without one, '
                "its runs are one-way and never ask for approval",
                warning=True,
            )
            agent = replace(agent, approvals="never")
        for warning in template.warnings(agent.command):
            self.problem(key, f"agents.{agent.name}.command: {warning}", warning=True)
        return agent


def _holds_session(command: tuple[str, ...], args: tuple[str, ...]) -> bool:
    """Whether a two-way session can work: a whole "{prompt}" for its arguments to replace, or
    those arguments written out in the command already."""
    return PROMPT in command or any(
        command[i : i + len(args)] == args for i in range(len(command) - len(args) + 1)
    )


def _is_arg(value: object) -> bool:
    """A string with no NUL, which no argv element or environment value can hold."""
    return isinstance(value, str) and "\0" not in value


def _integer(name: str, value: object, minimum: int, maximum: int) -> int:
    # bool is an int subclass in Python; ``true`` for a count is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{name} must be an integer, not {_show(value)}")
    if not minimum <= value <= maximum:
        raise _Invalid(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def _show(value: object) -> str:
    """A value as the user wrote it, short enough for one line of a message."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    kinds: dict[type, str] = {dict: "a table", list: "a list"}
    return kinds.get(type(value), str(value))


def _suggest(word: str, choices: list[str]) -> str:
    import difflib  # noqa: PLC0415 - only for a config file with a typo in it

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_KEY_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")


def _dotted_key(text: str) -> tuple[tuple[str, ...], str] | None:
    """Split a dotted key (``agents."x.y".cwd``) off the front of ``text``: (parts, the rest)."""
    parts: list[str] = []
    position = 0
    while match := _KEY_PART.match(text, position):
        parts.append(next(group for group in match.groups() if group is not None))
        position = match.end()
        if not text.startswith(".", position):
            return tuple(parts), text[position:]
        position += 1
    return None


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each table and key is first written, found by scanning; best effort.

    It only has to be right for files tomllib already accepted, and for the usual shapes: table
    headers, ``key =`` lines, dotted keys. A key inside an inline table maps to its parent's line.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}  # [[name]] tables seen so far, per name
    in_string = False
    # Split on "\n" only, as tomllib counts lines (str.splitlines also splits on \f, \x1c...).
    for number, line in enumerate(text.split("\n"), start=1):
        toggles = (line.count('"""') + line.count("'''")) % 2 == 1
        if in_string:  # inside a multi-line string, nothing is a key
            in_string = not toggles
            continue
        stripped = line.strip()
        if stripped.startswith("["):
            found = _dotted_key(stripped.lstrip("["))
            if found is None or not found[1].startswith("]"):
                continue
            table, key = found[0], found[0]
            if stripped.startswith("[["):  # one more element of an array of tables: name.N
                index = arrays.get(key, 0)
                arrays[key] = index + 1
                table = key = (*key, str(index))
            elif key[:1] in arrays:  # [name.sub]: a table inside the latest element
                table = key = (key[0], str(arrays[key[:1]] - 1), *key[1:])
        elif (found := _dotted_key(stripped)) is not None and found[1].startswith("="):
            key = table + found[0]
            in_string = toggles
        else:
            continue
        for end in range(1, len(key) + 1):
            lines.setdefault(key[:end], number)
    return lines
