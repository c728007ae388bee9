"""A hook as ``config.toml`` declares it: ``[[hooks]]`` (aios.config validates the table)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from aios.hooks.mask import mask_argv, mask_headers, mask_url

# What a hook may be told of, in the order the docs list them.
EVENTS: tuple[str, ...] = (
    "started",  # the run is running (again, after each restart)
    "succeeded",
    "failed",
    "stopped",
    "interrupted",  # it was live when the previous daemon died (found at start-up)
    "attention",  # needs login, offline, stalled, refused actions, a failure exit 0 hid
    "approval",  # a two-way session asks to allow a tool
)
FORMATS: tuple[str, ...] = ("json", "ntfy", "slack")
DEFAULT_TIMEOUT = 10.0

Format = Literal["json", "ntfy", "slack"]


def _no_headers() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Hook:
    # Its place among the [[hooks]] tables of the file, from 1: what `aios hooks test N` names.
    # A hook left out for a mistake keeps its number, so the others keep theirs.
    number: int
    on: frozenset[str]
    command: tuple[str, ...] | None = None  # an argv list, never a shell string
    url: str | None = None  # http or https; a POST
    agents: frozenset[str] | None = None  # None: runs of every agent
    timeout: float = DEFAULT_TIMEOUT
    headers: Mapping[str, str] = field(default_factory=_no_headers, hash=False)
    format: Format = "json"

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"hook {self.number} needs exactly one of command and url")
        unknown = self.on - set(EVENTS)
        if unknown or not self.on:
            raise ValueError(f"hook {self.number} has no or unknown events: {sorted(unknown)}")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def wants(self, event: str, agent: str) -> bool:
        return event in self.on and (self.agents is None or agent in self.agents)

    @property
    def kind(self) -> Literal["command", "url"]:
        return "command" if self.command is not None else "url"

    @property
    def target(self) -> str:
        """What it delivers to, secrets hidden: for lists and logs."""
        if self.command is not None:
            return " ".join(mask_argv(self.command))
        assert self.url is not None
        return mask_url(self.url)

    def to_json(self) -> dict[str, Any]:
        """As the API and the settings page show it: secrets hidden."""
        return {
            "number": self.number,
            "on": [event for event in EVENTS if event in self.on],
            "agents": None if self.agents is None else sorted(self.agents),
            "command": None if self.command is None else mask_argv(self.command),
            "url": None if self.url is None else mask_url(self.url),
            "format": self.format if self.url is not None else None,
            "headers": mask_headers(dict(self.headers)),
            "timeout": self.timeout,
            "target": self.target,
        }
