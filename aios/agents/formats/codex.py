"""Codex CLI (``codex exec --json``). Placeholder: being written."""

from __future__ import annotations

from aios.agents.formats.base import Format, Reducer
from aios.runs import Permission

FORMAT = Format(
    "codex-json",
    structured=True,
    permissions={
        Permission.READ_ONLY: ("--sandbox", "read-only"),
        Permission.EDIT: ("--sandbox", "workspace-write"),
        Permission.FULL: ("--dangerously-bypass-approvals-and-sandbox",),
    },
    reducer=Reducer,
)
