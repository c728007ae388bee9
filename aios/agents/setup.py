"""How to install and sign in each agent CLI AIOS knows: what "unavailable" and "not logged in"
point to. Keyed by executable rather than by preset name: a hint belongs to the program that is
missing. Versions AIOS was verified against are in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


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
