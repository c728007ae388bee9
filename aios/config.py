"""Settings, and the validator of ``config.toml``, which overrides or extends the agent presets.

The file is optional and only ever read. Nothing wrong in it stops the daemon: each mistake
becomes a :class:`ConfigProblem` (with a line number when one can be found) and the setting keeps
its default or the agent is left out, so a typo costs one agent, not the whole service. What an
agent is lives in ``aios.agents.definitions``, the presets in ``aios.agents.presets``.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aios import template
from aios.agents.definitions import AgentDef
from aios.agents.formats import FORMATS
from aios.agents.formats.base import TwoWay
from aios.agents.presets import PRESETS
from aios.config_values import (
    AGENT_FIELDS,
    AGENT_NAME,
    HOOK_FIELDS,
    LIST_HINT,
    Invalid,
    integer,
    suggest,
)
from aios.hooks.spec import EVENTS as HOOK_EVENTS
from aios.hooks.spec import Hook
from aios.template import PERMISSION, PROMPT

__all__ = ["SETTINGS", "Config", "ConfigProblem", "Setting", "Settings", "load_config"]


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
            integer(self.name, value, self.minimum, self.maximum)
        except Invalid as exc:
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
                self.problem((key,), f"unknown setting {key!r}{suggest(key, [*_SETTINGS])}")
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
            if (check := HOOK_FIELDS.get(key)) is None:
                hint = suggest(key, [*HOOK_FIELDS])
                self.problem((*where, key), f"unknown key {key!r} in {name}{hint}")
                continue
            try:
                values[key] = check(f"{name}.{key}", value)
            except Invalid as exc:
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
                    f"{name}.agents: no agent is named {agent!r}{suggest(agent, [*agents])}",
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
            if (check := AGENT_FIELDS.get(key)) is None:
                hint = suggest(key, [*AGENT_FIELDS])
                self.problem((*where, key), f"unknown key {key!r} in agents.{name}{hint}")
                continue
            try:
                values[key] = check(f"agents.{name}.{key}", value)
            except Invalid as exc:
                self.problem((*where, key, *exc.key), exc.message)
        if "command" not in table and preset is None:
            self.problem(where, f"agents.{name}.command is missing: give {LIST_HINT}")
        if any(not p.warning for p in self.problems[before:]):
            return None  # skip the whole agent rather than run a guess at what was meant
        if preset is not None:  # overriding a preset: what the file leaves out is inherited
            agent = replace(preset, source="config", **values)
        else:
            agent = AgentDef(name=name, source="config", **values)
        return self.check_command(agent)

    def check_command(self, agent: AgentDef) -> AgentDef | None:
        key = ("agents", agent.name, "command")
        for name, command in (
            ("command", agent.command),
            ("terminal_command", agent.terminal_command),
        ):
            if PERMISSION in command and agent.output.permissions is None:
                self.problem(
                    ("agents", agent.name, name),
                    f'agents.{agent.name}.{name} has "{{permission}}", but format '
                    f"{agent.format!r} has no permission modes (give a format that has)",
                )
                return None
        if agent.approvals == "ask" and agent.output.two_way is None:
            self.problem(
                ("agents", agent.name, "approvals"),
                f'agents.{agent.name}.approvals = "ask" needs a format that can hold a '
                f"conversation ({', '.join(conversing())}), not {agent.format!r}",
            )
            return None
        two_way = agent.output.two_way
        if agent.approvals == "ask" and two_way and not _rewritable(agent.command, two_way):
            self.problem(
                ("agents", agent.name, "approvals"),
                f'agents.{agent.name}.approvals = "ask" is ignored: its command is not one that '
                f"format {agent.format!r} can turn into a two-way session ({two_way.how}); "
                "its runs are one-way and never ask for approval",
                warning=True,
            )
            agent = replace(agent, approvals="never")
        elif agent.approvals == "ask" and two_way and not _holds_session(agent.command, two_way):
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
        for warning in template.warnings(agent.terminal_command):
            self.problem(
                ("agents", agent.name, "terminal_command"),
                f"agents.{agent.name}.terminal_command: {warning}",
                warning=True,
            )
        return agent


def conversing() -> tuple[str, ...]:
    """The formats whose CLIs can hold a two-way session, for the error that names them (only
    then are their modules loaded)."""
    return tuple(name for name, f in FORMATS.items() if f.two_way is not None)


def _rewritable(command: tuple[str, ...], two_way: TwoWay) -> bool:
    """Whether the format can turn this one-way command into its two-way one (codex's
    ``exec`` into ``app-server``), when it needs to."""
    return two_way.command is None or two_way.command(command) is not None


def _holds_session(command: tuple[str, ...], two_way: TwoWay) -> bool:
    """Whether a two-way session can work: a whole "{prompt}" for its arguments to replace, or
    those arguments written out in the command already (once rewritten for the session, as
    gemini's "--prompt={prompt}" becomes "{prompt}")."""
    if two_way.command is not None:
        command = two_way.command(command) or command
    args = two_way.args
    return PROMPT in command or any(
        command[i : i + len(args)] == args for i in range(len(command) - len(args) + 1)
    )


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
