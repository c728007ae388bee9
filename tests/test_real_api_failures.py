"""The real-agents tier when the model API misbehaves: Claude Code, Codex CLI, Gemini CLI and
Aider at their pinned versions, through AIOS, against a scripted server that answers errors
(429, 500, Anthropic's 529), is not there at all (a closed port), answers late, or hangs up in
the middle of an answer. What each CLI really does is what the run must show, live and at its
end: docs/agents.md, "Verified versions and the real-agents tier", has the table.

Each CLI's retries are cut short through its own settings (tests/realagents.py): claude
``CLAUDE_CODE_MAX_RETRIES=1``, codex ``request_max_retries = stream_max_retries = 1``, gemini
``general.maxAttempts = 2``. Aider's retries (a wait doubling from 0.25 s to 32 s, about 80 s)
cannot be shortened: its runs are stopped once they have shown what they do, which also shows
that a stop keeps what the stream learnt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from aios.agents.formats import aider, claude, codex, gemini
from aios.runs import FailureKind
from tests.helpers import EventCollector
from tests.models.anthropic import AnthropicModel
from tests.models.base import Drop, Fail, ScriptedModel, Slow, Text
from tests.models.gemini import GeminiModel
from tests.models.openai_chat import ChatModel
from tests.models.openai_responses import ResponsesModel
from tests.realagents import RealAgents
from tests.test_real_agents import real, repo

pytestmark = [pytest.mark.daemon, pytest.mark.real_agents]
__all__ = ["real", "repo"]  # the fixtures

PROMPT = "Say hello."
MODELS: dict[str, Callable[..., ScriptedModel]] = {
    "claude": AnthropicModel,
    "codex": ResponsesModel,
    "gemini": GeminiModel,
    "aider": ChatModel,
}
FINAL = {"succeeded", "failed", "stopped", "interrupted"}
# Long enough for any CLI to start on a loaded machine (gemini takes 2 s idle, 15 s busy).
LIVE = 90


def hint_for(cli: str, kind: FailureKind) -> str:
    """The format's own words for a failure of ``kind``."""
    hints: dict[FailureKind, str] = {
        "claude": claude.HINTS, "codex": codex.HINTS, "gemini": gemini.HINTS, "aider": aider.HINTS
    }[cli]  # fmt: skip
    return hints[kind]


class Watch:
    """One run's events, as the dashboard and the tray see them."""

    def __init__(self, events: EventCollector, run_id: str) -> None:
        self.events, self.run_id = events, run_id

    def until(
        self, holds: Callable[[dict[str, Any]], bool], timeout: float = LIVE
    ) -> dict[str, Any]:
        """The first record of the run for which ``holds`` is true (none later than its end)."""

        def match(kind: str, data: Any) -> bool:
            if kind != "run" or data["id"] != self.run_id:
                return False
            assert holds(data) or data["state"] not in FINAL, (data["state"], data["error"])
            return holds(data)

        run: dict[str, Any] = self.events.wait(match, timeout)[1]
        return run

    def activity(self, activity: str) -> dict[str, Any]:
        return self.until(lambda run: run["activity"] == activity)

    def end(self, timeout: float = LIVE) -> dict[str, Any]:
        return self.until(lambda run: run["state"] in FINAL, timeout)

    def records(self) -> list[dict[str, Any]]:
        return [d for _, k, d in self.events.seen if k == "run" and d["id"] == self.run_id]

    def attention(self) -> list[dict[str, Any]]:
        return [d for _, k, d in self.events.seen if k == "attention" and d["run"] == self.run_id]


@contextmanager
def launched(real: RealAgents, cli: str, repo: Path) -> Iterator[Watch]:
    events = EventCollector(real.d.port, real.d.info.token)
    try:
        yield Watch(events, real.launch(cli, PROMPT, repo)["id"])
    finally:
        events.close()


def stop(real: RealAgents, watch: Watch) -> dict[str, Any]:
    real.d.client.request("POST", f"/api/runs/{watch.run_id}/stop")
    return watch.end()


ERRORS = [
    ("claude", 429),
    ("claude", 500),
    ("claude", 529),  # Anthropic's "overloaded"
    ("codex", 429),
    ("codex", 500),
    ("gemini", 429),
    ("gemini", 500),
    ("aider", 429),
    ("aider", 500),
]
# What the run shows while the CLI retries, per CLI and status; None: it retries no visible
# way (codex gives up on a 429 at once, after its silent HTTP-level retry).
RETRYING = {
    "claude": "API retry 1/1 (HTTP {status}), next in ",
    "codex": "reconnecting 1/1",
    "gemini": "attempt 1 failed (HTTP {status}), retrying",
    "aider": "{error}, retry 1 in 0.2 s",
}
AIDER_ERROR = {429: "RateLimitError", 500: "InternalServerError"}


@pytest.mark.parametrize(("cli", "status"), ERRORS)
def test_an_api_error_shows_retrying_then_fails_with_a_hint(
    real: RealAgents, repo: Path, cli: str, status: int
) -> None:
    with MODELS[cli](*[Fail(status, "The scripted API fails.")] * 40) as model:
        real.start(**{cli: model})
        with launched(real, cli, repo) as watch:
            if cli == "codex" and status == 429:
                ended = watch.end()
                assert "retrying" not in [r["activity"] for r in watch.records()]
            else:
                retrying = watch.activity("retrying")
                expected = RETRYING[cli].format(status=status, error=AIDER_ERROR.get(status))
                assert retrying["activity_detail"].startswith(expected), retrying
                assert retrying["state"] in ("starting", "running")
                # aider retries for 80 s, a wait no setting shortens: stopped, it keeps what
                # its stream said (the failure it was retrying, its kind and hint).
                ended = stop(real, watch) if cli == "aider" else watch.end()
        assert ended["state"] == ("stopped" if cli == "aider" else "failed")
        assert ended["error_kind"] == "api", (ended["error"], real.log(watch.run_id)[-2000:])
        hint = hint_for(cli, FailureKind.API)
        assert ended["hint"] == (
            f"Stopped while retrying the API: {hint}" if cli == "aider" else hint
        )
        assert ended["activity"] is None
        assert len(model.seen) >= 1 and not [
            a for a in watch.attention() if a["reason"] == "offline"
        ]


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini", "aider"])
def test_an_unreachable_api_shows_offline_with_its_hint(
    real: RealAgents, repo: Path, cli: str
) -> None:
    closed = MODELS[cli]()
    env = real.environment(**{cli: closed})
    closed.close()  # its port: nothing listens there any more
    real.start_with(env)
    offline_hint = hint_for(cli, FailureKind.OFFLINE)
    with launched(real, cli, repo) as watch:
        offline = watch.activity("offline")
        assert offline["state"] in ("starting", "running"), offline
        assert offline["hint"] == offline_hint, offline
        if cli == "claude":  # it gives up after its one retry
            ended = watch.end()
            assert (ended["state"], ended["hint"]) == ("failed", offline_hint)
            assert "Connection refused" in ended["error"], ended["error"]
        else:  # codex waits for the network for ever; gemini and aider retry for 80 s
            ended = stop(real, watch)
            assert ended["state"] == "stopped"
            assert ended["hint"] == f"Stopped while offline: {offline_hint}"
        assert ended["error_kind"] == "offline", ended["error"]
        assert ended["activity"] is None


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini", "aider"])
def test_a_slow_first_byte_is_waited_for_without_alarm(
    real: RealAgents, repo: Path, cli: str
) -> None:
    with MODELS[cli](Slow(3, Text("Hello, late.")), Text("Commit message")) as model:
        real.start(**{cli: model})
        with launched(real, cli, repo) as watch:
            ended = watch.end(LIVE + 30)
        assert ended["state"] == "succeeded", (ended["error"], real.log(watch.run_id)[-2000:])
        assert "Hello, late." in real.log(watch.run_id)
        shown = {r["activity"] for r in watch.records()}
        assert not shown & {"retrying", "offline", "stalled", "needs_login"}, shown
        assert watch.attention() == []


# What each CLI does with an answer cut off halfway (the first one; the next comes whole).
DROPPED = {
    "claude": ("succeeded", None),  # asks again without streaming: no retry it reports
    "codex": ("succeeded", "reconnecting 1/1"),
    "gemini": ("failed", None),  # no retry: "[API Error: terminated]"
    "aider": ("succeeded", "APIConnectionError, retry 1 in 0.2 s"),
}


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini", "aider"])
def test_a_dropped_connection_is_retried_or_failed_as_the_cli_does(
    real: RealAgents, repo: Path, cli: str
) -> None:
    with MODELS[cli](Drop(Text("Cut off.")), Text("Recovered."), Text("Commit message")) as model:
        real.start(**{cli: model})
        with launched(real, cli, repo) as watch:
            ended = watch.end(LIVE + 30)
        state, retrying = DROPPED[cli]
        log = real.log(watch.run_id)
        assert ended["state"] == state, (ended["error"], log[-2000:])
        details = [r["activity_detail"] for r in watch.records() if r["activity"] == "retrying"]
        if retrying is None:
            assert details == []
        else:
            assert retrying in details, details
        if state == "succeeded":
            assert "Recovered." in log and len(model.seen) >= 2
        else:
            assert ended["error_kind"] == "offline" and ended["error"] == "[API Error: terminated]"
            assert ended["hint"] == hint_for(cli, FailureKind.OFFLINE)
