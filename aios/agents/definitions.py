"""An agent's definition: the command AIOS runs, how its output is read, how its runs behave.

Presets (``aios.agents.presets``) and ``config.toml`` (``aios.config``, which validates the
file) both make these; the run shell reads them through :class:`Catalog`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Literal, Protocol

from aios import template
from aios.agents.formats import FORMATS, Format
from aios.agents.setup import SETUP, Setup
from aios.runs import Permission
from aios.template import PERMISSION, RESUME


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
    # The argv template of a run in a terminal (docs/agents.md, "In a terminal"): the CLI's own
    # interactive interface, the prompt its first message. Empty: ``command`` in both cases.
    terminal_command: tuple[str, ...] = ()
    # "ask": hold a two-way session where the user allows or denies each tool the agent asks
    # for, and can send follow-ups (formats that can: claude); "never": one prompt, headless.
    approvals: Literal["never", "ask"] = "never"
    approval_timeout: float = 0.0  # seconds after which an unanswered request is denied (0: never)
    label: str = ""  # human name, e.g. "Claude Code"
    # Each run works in a git worktree of its own unless the launch says otherwise.
    worktree: bool = False
    # Each run gets a pseudo-terminal (docs/terminal.md) unless the launch says otherwise.
    terminal: bool = False

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
        terminal: bool = False,
    ) -> list[str]:
        """The command with its placeholders replaced (aios.template); never a shell string.

        ``resume``: the session to resume ("" for a CLI that needs no id), or None for a new one.
        ``terminal``: the run has a terminal, so its ``terminal_command`` is used when it has one.
        """
        output = self.output
        # A terminal run holds no two-way session (its user answers in the terminal itself):
        # it takes the one-way permission flags.
        session = output.two_way if self.two_way and not terminal else None
        modes = (session.permissions if session else None) or output.permissions or {}
        chosen = permission or self.default_permission
        flags = modes.get(chosen, ()) if chosen is not None else ()
        resuming = output.resume(resume or None) if resume is not None and output.resume else ()
        if terminal and self.terminal_command:
            return self.terminal_argv(prompt, flags, resuming)
        if session is None:
            return template.expand(self.command, prompt, flags, resuming)
        command = session.command(self.command) if session.command else self.command
        if command is None:  # the config check makes such an agent one-way
            return template.expand(self.command, prompt, flags, resuming)
        return template.expand(command, prompt, flags, resuming, session.args)

    def terminal_argv(
        self, prompt: str, flags: Sequence[str], resuming: Sequence[str] = ()
    ) -> list[str]:
        """``terminal_command`` expanded: the prompt is its first message, and with no prompt
        there is none (the CLI starts waiting for one rather than being sent an empty one)."""
        command = (
            self.terminal_command if prompt else template.without_prompt(self.terminal_command)
        )
        return template.expand(command, prompt, flags, resuming)

    def typed_prompt(self, prompt: str) -> str | None:
        """What to type into a terminal run's terminal as it starts: the prompt, for a
        ``terminal_command`` with no place for it (aider's chat), as one message (a multi-line
        one between aider's ``{`` and ``}`` lines); None when there is nothing to type."""
        if not prompt or not self.terminal_command or template.takes_prompt(self.terminal_command):
            return None
        text = prompt.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        if "\n" in text:
            text = "{\n" + text + "\n}"
        return text.replace("\n", "\r") + "\r"

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
            "terminal_command": list(self.terminal_command) or None,
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
            "terminal": self.terminal,
            "format": self.format,
            "approvals": self.approvals,
            "approval_timeout": self.approval_timeout,
            # How its CLI can ask for approval (its two-way protocol); None: it cannot ask.
            "can_ask": self.output.two_way.how if self.output.two_way else None,
            "can_continue": self.can_resume,
            "permissions": [str(p) for p in self.permissions],
            "default_permission": str(self.default_permission or "") or None,
            "takes_prompt": self.takes_prompt,
            "install_hint": self.setup.install_hint if self.setup else None,
            "login_hint": self.setup.login if self.setup else None,
        }


class Limits(Protocol):
    @property
    def max_concurrent(self) -> int: ...


class Catalog(Protocol):
    """What the run shell needs of the loaded configuration (``aios.config.Config`` is one),
    re-read on each use so that edits to config.toml apply without a restart."""

    @property
    def agents(self) -> Mapping[str, AgentDef]: ...

    @property
    def settings(self) -> Limits: ...
