"""Gemini CLI (``gemini -o stream-json``). Placeholder: being written."""

from __future__ import annotations

from aios.agents.formats.base import Format, Reducer
from aios.runs import Permission

FORMAT = Format(
    "gemini-stream-json",
    structured=True,
    permissions={
        Permission.READ_ONLY: ("--approval-mode", "plan"),
        Permission.EDIT: ("--approval-mode", "auto_edit"),
        Permission.FULL: ("--approval-mode", "yolo"),
    },
    reducer=Reducer,
)
