"""Hooks in config.toml (validated with line numbers), masked for display, and their bodies;
the dispatcher's queue and event rules, in process with a real event bus."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path

import pytest

from aios.config import Config, load_config
from aios.events import EventBus
from aios.hooks import Dispatcher, Hook
from aios.hooks.delivery import Outcome
from aios.hooks.mask import mask_argv, mask_url
from aios.hooks.message import HookEvent


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def problems(config: Config) -> list[tuple[int | None, str]]:
    return [(p.line, p.message) for p in config.problems]


def test_valid_hooks_load_in_file_order(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        [[hooks]]
        on = ["failed", "attention"]
        url = "https://ntfy.sh/my-aios"
        format = "ntfy"
        headers = { Priority = "high" }

        [[hooks]]
        on = ["succeeded"]
        agents = ["claude"]
        command = ["notify-send", "AIOS"]
        timeout = 2.5
        """,
    )
    assert config.problems == ()
    first, second = config.hooks
    assert first == Hook(
        number=1,
        on=frozenset({"failed", "attention"}),
        url="https://ntfy.sh/my-aios",
        format="ntfy",
        headers={"Priority": "high"},
    )
    assert second.number == 2 and second.command == ("notify-send", "AIOS")
    assert second.agents == frozenset({"claude"}) and second.timeout == 2.5
    assert second.wants("succeeded", "claude") and not second.wants("succeeded", "codex")
    assert not second.wants("failed", "claude")


def test_a_bad_hook_is_dropped_with_its_line_and_the_rest_load(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        max_concurrent = 2

        [[hooks]]
        on = ["faild"]
        url = "https://example.org/hook"

        [[hooks]]
        on = ["failed"]
        command = "notify-send failed"

        [[hooks]]
        on = ["failed"]
        url = "ftp://example.org/"

        [[hooks]]
        on = ["failed"]

        [[hooks]]
        on = ["failed"]
        command = ["true"]
        url = "https://example.org/"

        [[hooks]]
        on = ["failed"]
        command = ["true"]
        format = "slack"
        timeout = 0

        [[hooks]]
        on = ["failed"]
        url = "https://example.org/"
        colour = "red"
        [hooks.headers]
        Host = "elsewhere"

        [[hooks]]
        on = ["stopped"]
        url = "https://example.org/kept"
        agents = ["claud"]
        """,
    )
    assert problems(config) == [
        (
            4,
            "hooks[1].on: unknown event 'faild' (did you mean 'failed'?); events are "
            '"started" | "succeeded" | "failed" | "stopped" | "interrupted" | "attention" | '
            '"approval"',
        ),
        (9, 'hooks[2].command must be an argv list like ["pytest", "-x"], not a shell string'),
        (13, "hooks[3].url must be an http:// or https:// address with a host"),
        (15, "hooks[4] needs exactly one of command (an argv list) and url"),
        (18, "hooks[5] needs exactly one of command (an argv list) and url"),
        (26, "hooks[6].format is for url hooks, not commands"),
        (27, "hooks[6].timeout must be above 0 and at most 3600, not 0"),
        (32, "unknown key 'colour' in hooks[7]"),
        (34, "hooks[7].headers cannot set a header named 'Host'"),
        (39, "hooks[8].agents: no agent is named 'claud' (did you mean 'claude'?)"),
    ]
    assert config.problems[-1].warning  # an unknown agent leaves the hook in use
    assert config.settings.max_concurrent == 2  # the rest of the file loads
    (kept,) = config.hooks
    assert kept.number == 8 and kept.url == "https://example.org/kept"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('hooks = "x"', "hooks must be an array of tables: write [[hooks]] per hook"),
        ("[[hooks]]\non = []\ncommand = ['true']", "hooks[1].on must be a non-empty list"),
        ("[[hooks]]\non = ['failed']\ncommand = []", "hooks[1].command must be a non-empty list"),
        ("[[hooks]]\non = ['failed']\nurl = 'https://a b/'", "hooks[1].url must be an address"),
        ("[[hooks]]\non = ['failed']\nurl = 'http://x:99999/'", "hooks[1].url is not a valid"),
        ("[[hooks]]\non = ['failed']\nurl = 'https://x/'\nformat = 'xml'", "hooks[1].format"),
        ("[[hooks]]\non = ['failed']\nurl = 'https://x/'\nheaders = {A = \"x\\ny\"}", "one-line"),
        ("[[hooks]]\non = ['failed']\nurl = 'https://x/'\nheaders = {A = 'é€'}", "Latin-1"),
        ("[[hooks]]\non = ['failed']\ncommand = ['true']\nagents = 'claude'", "list of agent"),
    ],
)
def test_each_mistake_is_said(tmp_path: Path, text: str, message: str) -> None:
    config = load(tmp_path, text)
    assert config.hooks == ()
    assert len(config.problems) == 1 and message in config.problems[0].message
    assert config.problems[0].line is not None


def test_urls_are_shown_without_their_secrets() -> None:
    assert mask_url("https://ntfy.sh/aios-builds") == "https://ntfy.sh/aios-builds"
    assert mask_url("https://me:hunter2@example.org/h") == "https://***@example.org/h"
    assert (
        mask_url("https://hooks.slack.com/services/T0001/B0002/AbCdEfGhIjKlMnOpQrStUv12")
        == "https://hooks.slack.com/services/T0001/B0002/***"
    )
    assert (
        mask_url("http://127.0.0.1:8080/h?api_key=abc&room=dev&token=x&access_token=y")
        == "http://127.0.0.1:8080/h?api_key=***&room=dev&token=***&access_token=***"
    )
    assert mask_url("http://[::1]:9/x") == "http://[::1]:9/x"
    assert mask_argv(("curl", "https://u:p@h/x", "-d", "hi")) == [
        "curl",
        "https://***@h/x",
        "-d",
        "hi",
    ]
    hook = Hook(1, frozenset({"failed"}), url="https://u:p@h/x", headers={"Authorization": "t"})
    shown = json.dumps(hook.to_json())
    assert "p@" not in shown and '"t"' not in shown and '"Authorization": "***"' in shown


RUN = {
    "id": "a6e86b2d91c5",
    "agent": "claude",
    "prompt": "write hello.py",
    "state": "failed",
    "exit_code": 1,
    "hint": "Log in: run `claude` once.",
    "activity": None,
}


def test_bodies_in_each_format() -> None:
    event = HookEvent("failed", RUN, "http://127.0.0.1:1/runs/a6e86b2d91c5")
    body, headers = event.body("json")
    data = json.loads(body)
    assert data["event"] == "failed" and data["run"] == RUN and data["test"] is False
    assert data["run_url"] == "http://127.0.0.1:1/runs/a6e86b2d91c5"
    assert data["title"] == "claude failed (exit 1)"
    assert data["message"] == "Log in: run `claude` once."
    assert headers["Content-Type"] == "application/json"
    body, headers = event.body("ntfy")
    assert headers["Title"] == "claude failed (exit 1)"
    assert body.decode() == "Log in: run `claude` once.\nhttp://127.0.0.1:1/runs/a6e86b2d91c5"
    body, _ = event.body("slack")
    assert json.loads(body) == {
        "text": "claude failed (exit 1): Log in: run `claude` once.\n"
        "http://127.0.0.1:1/runs/a6e86b2d91c5"
    }
    assert event.environment() == {
        "AIOS_EVENT": "failed",
        "AIOS_RUN_ID": "a6e86b2d91c5",
        "AIOS_AGENT": "claude",
        "AIOS_STATE": "failed",
        "AIOS_ACTIVITY": "",
        "AIOS_RUN_URL": "http://127.0.0.1:1/runs/a6e86b2d91c5",
    }


class Recording:
    """A dispatcher whose deliveries are recorded, and held while ``gate`` is clear."""

    def __init__(self, hooks: tuple[Hook, ...], *, workers: int = 4, queue: int = 256) -> None:
        self.delivered: list[tuple[int, str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.dispatcher = Dispatcher(
            lambda: hooks, "http://127.0.0.1:1/", workers=workers, queue=queue,
            deliver=self.deliver,
        )  # fmt: skip

    async def deliver(self, hook: Hook, event: HookEvent) -> Outcome:
        await self.gate.wait()
        self.delivered.append((hook.number, event.name, event.run_id))
        return Outcome(True, "recorded")


def run_event(run_id: str, state: str, agent: str = "claude") -> dict[str, object]:
    return {"id": run_id, "agent": agent, "state": state}


async def settle(dispatcher: Recording, count: int) -> None:
    """Wait (at most 5 s) until ``count`` deliveries were made."""
    for _ in range(500):
        if len(dispatcher.delivered) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(dispatcher.delivered)} deliveries, not {count}")


def test_which_changes_are_which_events() -> None:
    async def main() -> list[tuple[int, str, str]]:
        bus = EventBus()
        hook = Hook(1, frozenset({"started", "succeeded", "stopped", "interrupted", "approval"}),
                    command=("true",))  # fmt: skip
        other = Hook(2, frozenset({"attention"}), command=("true",), agents=frozenset({"codex"}))
        recording = Recording((hook, other))
        dispatcher = recording.dispatcher
        dispatcher.attach(bus)
        # At start-up: a run the previous daemon left live becomes interrupted (news), once.
        bus.publish("run", run_event("old", "interrupted"))
        bus.publish("run", run_event("old", "interrupted"))
        dispatcher.started()
        bus.publish("run", run_event("older", "interrupted"))  # republished later: not news
        bus.publish("run", run_event("done", "succeeded"))  # never seen live: history
        for state in ("queued", "starting", "running", "running", "succeeded", "succeeded"):
            bus.publish("run", run_event("r1", state))
        bus.publish("attention", {"run": "r1", "agent": "claude", "reason": "denials"})
        bus.publish("attention", {"run": "r2", "agent": "codex", "reason": "stalled"})
        bus.publish("attention", {"run": "r1", "agent": "claude", "reason": "awaiting_approval"})
        await settle(recording, 5)
        await dispatcher.close(1, 1)
        return recording.delivered

    assert sorted(asyncio.run(main())) == sorted(
        [
            (1, "interrupted", "old"),
            (1, "started", "r1"),
            (1, "succeeded", "r1"),
            (2, "attention", "r2"),
            (1, "approval", "r1"),
        ]
    )


def test_a_full_queue_drops_its_oldest(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[tuple[int, str, str]]:
        bus = EventBus()
        hook = Hook(1, frozenset({"started"}), command=("true",))
        recording = Recording((hook,), workers=1, queue=2)
        dispatcher = recording.dispatcher
        recording.gate.clear()  # the one worker holds the first delivery
        dispatcher.attach(bus)
        dispatcher.started()
        for number in range(5):
            bus.publish("run", run_event(f"r{number}", "running"))
            await asyncio.sleep(0)  # let the worker take the first
        recording.gate.set()
        await settle(recording, 3)
        await dispatcher.close(1, 1)
        return recording.delivered

    delivered = asyncio.run(main())
    assert delivered == [(1, "started", "r0"), (1, "started", "r3"), (1, "started", "r4")]
    dropped = [r for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert len(dropped) == 2 and "started of run r1" in dropped[0].getMessage()


def test_every_example_in_the_docs_loads(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "hooks.md").read_text() + (root / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[[hooks]]" in b]
    assert len(blocks) >= 6
    for block in blocks:
        config = load(tmp_path, block)
        assert config.problems == (), (block, config.problems)
        assert len(config.hooks) == block.count("[[hooks]]")
