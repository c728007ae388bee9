"""What called for the user since they last looked: one ledger, kept by the daemon.

The tray's attention icon, the dashboard's "since you last looked" note, ``/api/status`` and the
``unseen`` event all read this one ledger, so they can never disagree. It is fed the bus's own
events (a listener, on the daemon's loop) and cleared by a dashboard page the user is looking at
(``POST /ui/seen``): whichever way the page was opened, seeing it is what counts.

A run enters the ledger when it *becomes* failed (a live run's state turns ``failed``; a failed
run published again, when its worktree is merged, is old news) or when it calls for the user
(an ``attention`` event: it needs a login, stalled, went offline, had actions refused, or hid a
failure behind exit 0). A request for approval is not counted: it is its own question, in the
tray's menu and on the run's page, and goes when it is answered. A failure outranks a call, and
each run counts once.

Every entry remembers the id of the event that made it. A page shows the ledger with its
``latest`` id and clears exactly what it showed (``seen(up_to=latest)``): what arrived after the
page drew stays, and reaches the page in the next ``unseen`` event. The ledger lives in memory:
a new daemon starts with nothing unseen (runs cannot fail while no daemon runs; they are found
``interrupted`` at the next start and shown as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aios.events import Event
from aios.runs import RunState

__all__ = ["Reason", "Unseen", "UnseenCounts", "since_last_looked"]

# Attention reasons that are questions of their own, answered where they are asked.
NOT_COUNTED = frozenset({"awaiting_approval"})


class Reason(StrEnum):
    FAILED = "failed"  # the run ended failed
    NEEDS_YOU = "needs_you"  # the run called for the user (an `attention` event)


def since_last_looked(failed: int, needs_you: int) -> str:
    """The words the tray's menu, its tooltip and the dashboard all use; "" for nothing."""
    parts = [f"{failed} failed"] if failed else []
    if needs_you:
        parts.append(f"{needs_you} need{'s' if needs_you == 1 else ''} you")
    return f"{', '.join(parts)} since you last looked" if parts else ""


@dataclass(frozen=True)
class UnseenCounts:
    """The ledger at one moment: what the tray, the pages and ``/api/status`` show."""

    failed: int = 0
    needs_you: int = 0
    runs: tuple[str, ...] = ()  # newest first
    latest: int = 0  # the event id of the newest entry; 0 when there is none

    @property
    def total(self) -> int:
        return self.failed + self.needs_you

    def describe(self) -> str:
        return since_last_looked(self.failed, self.needs_you)

    def to_json(self) -> dict[str, Any]:
        return {
            "failed": self.failed,
            "needs_you": self.needs_you,
            "total": self.total,
            "runs": list(self.runs),
            "latest": self.latest,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnseenCounts:
        return cls(
            int(data["failed"]), int(data["needs_you"]), tuple(data["runs"]), int(data["latest"])
        )


@dataclass
class _Entry:
    reason: Reason
    event_id: int


class Unseen:
    """The ledger. ``observe`` and ``seen`` say whether the counts changed (then publish them)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # Runs last seen in a live state: a `failed` run event counts only for one of these, so
        # a failed run republished (its worktree merged or discarded) is not news again.
        self._live: set[str] = set()

    def observe(self, event: Event) -> bool:
        if event.kind == "run":
            return self._on_run(event)
        if event.kind == "attention":
            if event.data.get("reason") in NOT_COUNTED:
                return False
            return self._add(str(event.data["run"]), Reason.NEEDS_YOU, event.id)
        if event.kind == "deleted":  # a forgotten run cannot be looked at any more
            run_id = str(event.data["id"])
            self._live.discard(run_id)
            return self._entries.pop(run_id, None) is not None
        return False

    def _on_run(self, event: Event) -> bool:
        run_id, state = str(event.data["id"]), RunState(event.data["state"])
        if state.is_live:
            self._live.add(run_id)
            return False
        was_live = run_id in self._live
        self._live.discard(run_id)
        if state is RunState.FAILED and was_live:
            return self._add(run_id, Reason.FAILED, event.id)
        return False

    def _add(self, run_id: str, reason: Reason, event_id: int) -> bool:
        entry = self._entries.get(run_id)
        if entry is not None and (entry.reason is Reason.FAILED or reason is Reason.NEEDS_YOU):
            return False  # already counted, as much or more
        self._entries[run_id] = _Entry(reason, event_id)
        return True

    def seen(self, up_to: int | None = None) -> bool:
        """The user looked at what the ledger held up to event ``up_to`` (None: everything)."""
        before = len(self._entries)
        self._entries = {
            run_id: entry
            for run_id, entry in self._entries.items()
            if up_to is not None and entry.event_id > up_to
        }
        return len(self._entries) != before

    def counts(self) -> UnseenCounts:
        newest = sorted(self._entries.items(), key=lambda item: item[1].event_id, reverse=True)
        return UnseenCounts(
            failed=sum(e.reason is Reason.FAILED for _, e in newest),
            needs_you=sum(e.reason is Reason.NEEDS_YOU for _, e in newest),
            runs=tuple(run_id for run_id, _ in newest),
            latest=newest[0][1].event_id if newest else 0,
        )
