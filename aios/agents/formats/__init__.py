"""Agent output formats: the names a config file may give as an agent's ``format``.

Each CLI's knowledge lives in its own module; this is only the table.
"""

from __future__ import annotations

from aios.agents.formats import aider, claude, codex_app_server, gemini_acp
from aios.agents.formats.base import AuthState, Format, Knowledge, Login, Reducer

__all__ = ["FORMATS", "TEXT", "AuthState", "Format", "Knowledge", "Login", "Reducer", "get"]

# Any command: its output is kept as it came, and nothing is read into it.
TEXT = Format("text", structured=False)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (TEXT, claude.FORMAT, codex_app_server.FORMAT, gemini_acp.FORMAT, aider.FORMAT)
}


def get(name: str) -> Format:
    return FORMATS[name]
