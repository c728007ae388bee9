"""Aider (text output). Placeholder: being written."""

from __future__ import annotations

from aios.agents.formats.base import Format, Reducer
from aios.runs import Permission

FORMAT = Format(
    "aider",
    structured=False,
    permissions={
        Permission.READ_ONLY: ("--dry-run", "--yes-always", "--no-suggest-shell-commands"),
        Permission.EDIT: ("--yes-always", "--no-suggest-shell-commands"),
        Permission.FULL: ("--yes-always",),
    },
    reducer=Reducer,
)
