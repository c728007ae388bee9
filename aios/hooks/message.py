"""The event a hook receives, and the bodies it is sent as.

``json`` (the default, and what a command reads on stdin)::

    {"event": "failed", "title": "claude failed (exit 1)", "message": "…",
     "run": {…the run as GET /api/runs/{id} gives it…}, "run_url": "http://127.0.0.1:…/runs/…",
     "attention": null, "test": false}

``ntfy``: the message as a plain-text body and the title in a ``Title`` header, as the ntfy push
service takes them. ``slack``: ``{"text": …}``, which Slack, Mattermost and Discord's
Slack-compatible webhooks take.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_VERBS = {
    "started": "started",
    "succeeded": "finished",
    "failed": "failed",
    "stopped": "was stopped",
    "interrupted": "was interrupted",
    "attention": "needs you",
    "approval": "asks for approval",
    "test": "sent a test event",
}
MESSAGE_MAX = 500


@dataclass(frozen=True)
class HookEvent:
    name: str  # one of spec.EVENTS, or "test"
    run: dict[str, Any]  # the run record as the API has it
    run_url: str
    # For attention and approval: the bus's attention event (reason, message, approval).
    attention: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return str(self.run.get("id", ""))

    @property
    def agent(self) -> str:
        return str(self.run.get("agent", ""))

    @property
    def title(self) -> str:
        """One line, ASCII whenever the agent's name is (agent names are): an ntfy header."""
        exit_code = self.run.get("exit_code")
        failed = self.name == "failed" and exit_code not in (None, 0)
        code = f" (exit {exit_code})" if failed else ""
        return f"{self.agent} {_VERBS.get(self.name, self.name)}{code}"

    @property
    def message(self) -> str:
        """What happened, in words: the reason for attention, the hint of a failure, else the
        prompt (or the run's id when it had none)."""
        run = self.run
        if self.attention is not None:
            text = str(self.attention.get("message") or "")
        elif self.name == "failed":
            text = str(run.get("hint") or run.get("error") or run.get("prompt") or "")
        elif self.name == "interrupted":
            text = "AIOS stopped while it ran. " + str(run.get("prompt") or "")
        else:
            text = str(run.get("prompt") or "")
        text = " ".join(text.split()) or self.run_id
        return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "test" if self.name == "test" else self.name,
            "title": self.title,
            "message": self.message,
            "run": self.run,
            "run_url": self.run_url,
            "attention": self.attention,
            "test": self.name == "test",
        }

    def body(self, format: str) -> tuple[bytes, dict[str, str]]:
        """The request body in ``format`` and the headers that go with it."""
        if format == "ntfy":
            # Header values go out as Latin-1: anything else in a title is replaced, not sent
            # broken (agent names are ASCII anyway).
            title = self.title.encode("latin-1", "replace").decode("latin-1")
            text = f"{self.message}\n{self.run_url}"
            return text.encode(), {"Title": title, "Content-Type": "text/plain; charset=utf-8"}
        if format == "slack":
            text = f"{self.title}: {self.message}\n{self.run_url}"
            return _json({"text": text}), {"Content-Type": "application/json"}
        return _json(self.to_json()), {"Content-Type": "application/json"}

    def environment(self) -> dict[str, str]:
        """The ``AIOS_*`` variables a command hook gets."""
        return {
            "AIOS_EVENT": self.name,
            "AIOS_RUN_ID": self.run_id,
            "AIOS_AGENT": self.agent,
            "AIOS_STATE": str(self.run.get("state") or ""),
            "AIOS_ACTIVITY": str(self.run.get("activity") or ""),
            "AIOS_RUN_URL": self.run_url,
        }


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()
