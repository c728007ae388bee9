"""Claude Code (``claude -p --output-format stream-json --verbose``). Placeholder: being written."""

from __future__ import annotations

from aios.agents.formats.base import Format, Reducer
from aios.runs import Permission

FORMAT = Format(
    "claude-stream-json",
    structured=True,
    permissions={
        Permission.READ_ONLY: ("--permission-mode", "plan"),
        Permission.EDIT: ("--permission-mode", "acceptEdits"),
        Permission.FULL: ("--dangerously-skip-permissions",),
    },
    reducer=Reducer,
)
