"""``aios agents``: the agents of the config file, whether each can run, and what to do about
those that cannot yet."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aios.cli.common import EXIT_OK, call, running
from aios.cli.tables import print_table
from aios.paths import Paths

if TYPE_CHECKING:
    import argparse


def cmd_agents(args: argparse.Namespace) -> int:
    body = call(running(Paths.from_env()), "GET", "/api/agents")
    assert isinstance(body, dict)
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    rows = [
        (
            agent["name"],
            agent["source"],
            "yes" if agent["available"] else "no",
            (agent.get("auth") or "").replace("_", " "),
            asks(agent),
            " ".join(agent["command"]),
        )
        for agent in body["agents"]
    ]
    print_table(("NAME", "SOURCE", "AVAILABLE", "LOGIN", "ASKS", "COMMAND"), rows)
    # What to do about each agent that cannot run yet, one line each under the table: the hints
    # are too long for a column.
    notes = [note for agent in body["agents"] if (note := agent_note(agent))]
    if notes:
        print()
        for note in notes:
            print(note)
    problems = body["config"]["problems"]
    if problems:
        print(
            f"\n{len(problems)} problem(s) in the config file (an error leaves its agent or"
            " setting out; a warning does not):"
        )
        for problem in problems:
            print(f"  {problem}")
    return EXIT_OK


def asks(agent: dict[str, Any]) -> str:
    """Whether its runs ask you to allow each tool: ``yes`` (``approvals = "ask"``), ``can``
    (its CLI can, were it set so), or nothing (it cannot: ``can_ask`` is null)."""
    if agent.get("approvals") == "ask":
        return "yes"
    return "can" if agent.get("can_ask") else ""


def agent_note(agent: dict[str, Any]) -> str | None:
    """``claude: 'claude' not found on PATH — install Claude Code: npm install -g …``; what the
    login check said; or None when there is nothing to say."""
    name = agent["name"]
    if not agent["available"]:
        hint = agent.get("install_hint")
        return f"{name}: {agent['unavailable_reason']}" + (f" — {hint}" if hint else "")
    detail, auth = agent.get("auth_detail"), agent.get("auth")
    if auth == "not_logged_in":
        hint = detail or agent.get("login_hint")
        return f"{name}: not logged in" + (f" — {hint}" if hint else "")
    if detail:
        return f"{name}: {(auth or 'unknown').replace('_', ' ')} — {detail}"
    return None
