"""Agent output formats: the names a config file may give as an agent's ``format``.

Each CLI's knowledge lives in its own module; this is only the table. A format's module is
imported the first time something needs that format (a run of it, a sign-in check, the agents
list): a daemon that runs none of these CLIs never loads their readers, some 1 MiB of code
(``make bench`` measures idle memory beside a bare Quart app).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from aios.agents.formats.base import AuthState, Format, Knowledge, Login, Reducer

__all__ = ["FORMATS", "TEXT", "AuthState", "Format", "Knowledge", "Login", "Reducer", "get"]

# Any command: its output is kept as it came, and nothing is read into it.
TEXT = Format("text", structured=False)

# Each name, and the module whose ``FORMAT`` it is (codex and gemini through the modules that
# add their two-way sessions to them).
MODULES: dict[str, str] = {
    "claude-stream-json": "claude",
    "codex-json": "codex_app_server",
    "gemini-stream-json": "gemini_acp",
    "aider": "aider",
}


class Registry(Mapping[str, Format]):
    """The formats by name; knowing the names needs none of their modules."""

    def __getitem__(self, name: str) -> Format:
        if name == TEXT.name:
            return TEXT
        module = MODULES[name]  # KeyError for a name no format has, as a dict would
        # import_module is thread-safe, and a no-op once the module is loaded.
        loaded: Format = importlib.import_module(f"{__name__}.{module}").FORMAT
        return loaded

    def __iter__(self) -> Iterator[str]:
        return iter((TEXT.name, *MODULES))

    def __len__(self) -> int:
        return 1 + len(MODULES)

    def __contains__(self, name: object) -> bool:
        return name == TEXT.name or name in MODULES


FORMATS: Mapping[str, Format] = Registry()


def get(name: str) -> Format:
    return FORMATS[name]
