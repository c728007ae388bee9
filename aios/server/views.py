"""What the templates show, computed once: run rows, counts, filters, and formatting helpers.

Pages and live SSE fragments render the same partials through these functions, so a row looks
the same whether it came with the page or was pushed later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from quart import Quart

from aios.formatting import MINUS, clock, duration, exit_status, timestamp, zone
from aios.runs import ATTENTION_ACTIVITIES, FINAL_STATES, Activity, Run, RunState, Tokens
from aios.server.context import daemon
from aios.server.diffview import anchor

LIVE = tuple(s for s in RunState if s.is_live)
FILTERS: dict[str, tuple[RunState, ...] | None] = {
    "all": None,
    "running": LIVE,
    "finished": tuple(s for s in RunState if s in FINAL_STATES and s is not RunState.FAILED),
    "failed": (RunState.FAILED,),
}
PAGE = 50


@dataclass(frozen=True)
class Counts:
    running: int
    queued: int
    failed: int
    total: int

    @classmethod
    def from_summary(cls, summary: dict[str, int]) -> Counts:
        live = sum(summary.get(s.value, 0) for s in LIVE if s is not RunState.QUEUED)
        return cls(
            live, summary.get("queued", 0), summary.get("failed", 0), summary.get("total", 0)
        )


def matches(run: Run, filter_name: str) -> bool:
    states = FILTERS.get(filter_name)
    return states is None or run.state in states


def run_duration(run: Run) -> float | None:
    if run.started_at is None:
        return None
    end = run.ended_at if run.ended_at is not None else time.time()
    return end - run.started_at


def size(value: int | None) -> str:
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def iso(timestamp: float | None) -> str:
    return "" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def preview(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


ACTIVITY_WORDS = {
    Activity.STARTING: "starting",
    Activity.WORKING: "working",
    Activity.RETRYING: "retrying",
    Activity.OFFLINE: "offline",
    Activity.NEEDS_LOGIN: "needs login",
    Activity.STALLED: "stalled",
    Activity.AWAITING_APPROVAL: "awaiting approval",
    Activity.WAITING: "waiting",
    Activity.AWAITING_INPUT: "awaiting input",
}


def activity(value: Activity | str | None) -> str:
    return "" if value is None else ACTIVITY_WORDS.get(Activity(value), str(value))


def attention(run: Run) -> str:
    """Why a run calls for the user, in words; empty when it does not."""
    if run.state.is_live and run.activity in ATTENTION_ACTIVITIES:
        words = activity(run.activity)
        return f"{words}: {run.activity_detail}" if run.activity_detail else words
    if run.state is RunState.SUCCEEDED and run.denials:
        count = len(run.denials)
        return f"finished, but was refused {count} action{'s' if count > 1 else ''}"
    if run.state is RunState.FAILED and run.exit_code == 0 and run.error:
        return "failed although it exited 0"
    return ""


def exit_of(run: Run) -> str:
    return exit_status(run.exit_code, run.exit_signal)


def tokens(value: Tokens | None) -> str:
    """``12.3k``: every token the agents counted, in and out."""
    if value is None:
        return "0"
    total = value.input + value.cached + value.output
    for unit, size_of in (("M", 1_000_000), ("k", 1_000)):
        if total >= size_of:
            return f"{total / size_of:.1f}{unit}"
    return str(total)


def cost(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.2f}" if value >= 1 else f"${value:.4f}".rstrip("0").rstrip(".")


def continuable(run: Run) -> bool:
    """Whether the run page offers to continue ``run``: it ended, its agent resumes sessions,
    and it has one (where its CLI needs an id)."""
    agent = daemon().config().agent(run.agent)
    return (
        run.state.is_final
        and agent is not None
        and agent.can_resume
        and (bool(run.session_id) or not agent.output.needs_session)
    )


SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish"})


def prompt_hint(agent: Mapping[str, Any] | None) -> str:
    """The launch form's placeholder for ``agent`` (as the API lists it): what its prompt is."""
    if agent is None:
        return ""
    command, label = agent["command"], agent["label"]
    if not agent["takes_prompt"]:
        return f"{label} takes no prompt: it runs its command as configured."
    if PurePath(command[0]).name in SHELLS and "-c" in command:
        return "A shell command line, e.g. make test && git status"
    return f"What should {label} do? e.g. Fix the failing test in tests/test_api.py"


def install(app: Quart) -> None:
    env = app.jinja_env
    env.filters.update(
        duration=duration, size=size, clock=clock, timestamp=timestamp, iso=iso, preview=preview
    )
    env.filters.update(activity=activity, attention=attention, tokens=tokens, cost=cost)
    env.filters.update(exit=exit_of)
    env.globals.update(run_duration=run_duration, FILTERS=FILTERS, RunState=RunState)
    env.filters.update(diff_anchor=anchor, prompt_hint=prompt_hint)
    env.globals.update(MINUS=MINUS)

    @app.context_processor
    async def local_zone() -> dict[str, str]:
        # Per render, not once: the name changes with daylight saving time (CET, CEST).
        return {"zone": zone()}
