"""What a Claude Code tool call is about, in words: its key argument, its result's text, and which
of the permission updates it suggests an "always" may apply (``aios.agents.formats.claude``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aios.agents.formats.base import dict_of, list_of, one_line, str_of

# The argument that says what a built-in tool call is about.
_KEY_ARGUMENT = {
    "Bash": "command",
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebFetch": "url",
    "WebSearch": "query",
    "Task": "description",
    "Agent": "description",
    "Skill": "skill",
}
_ANY_ARGUMENT = ("command", "file_path", "path", "pattern", "url", "query", "description")


def key_argument(name: str, tool_input: object, cwd: str = "") -> str:
    """The one argument that says what a tool call does: Bash's command, Write's file (relative
    to the session's directory when inside it), Grep's pattern …"""
    arguments = dict_of(tool_input)
    key = _KEY_ARGUMENT.get(name)
    value = str_of(arguments.get(key)) if key else ""
    if not value and name == "TodoWrite":
        return f"{len(list_of(arguments.get('todos')))} todos"
    if not value:
        value = next((str_of(arguments[k]) for k in _ANY_ARGUMENT if str_of(arguments.get(k))), "")
    if cwd and value.startswith(cwd.rstrip("/") + "/"):
        value = value[len(cwd.rstrip("/")) + 1 :]
    return one_line(value)


def result_text(content: object) -> str:
    """A tool result's content: a string, or a list of text (and image) blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in map(dict_of, list_of(content)):
        if block.get("type") == "text":
            parts.append(str_of(block.get("text")))
        elif block.get("type"):
            parts.append(f"[{str_of(block.get('type')) or 'block'}]")
    return "\n".join(parts)


def widens_for_itself(suggestion: Mapping[str, Any]) -> bool:
    """Whether an "always" may apply this suggested update: rules that allow (the request's own
    command or tool) and directories to work in. Never a mode (``setMode`` could be
    ``bypassPermissions``: everything, never asking) nor rules taken away or replaced."""
    if suggestion.get("type") == "addRules":
        return suggestion.get("behavior") == "allow"
    return suggestion.get("type") == "addDirectories"
