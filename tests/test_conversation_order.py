"""What a follow-up message leaves behind when the agent's whole turn is read while the message
is still being written (a quick model, a loaded machine): the turn's end, never "working"."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from aios.agents import conversation
from aios.agents.attempt import Held
from aios.agents.conversation import Conversations
from aios.agents.formats.base import SessionStart
from aios.agents.formats.codex_app_server import AppServerReducer
from aios.runs import Activity, Permission


def test_a_turn_that_ends_during_the_write_leaves_the_run_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reducer = AppServerReducer()
    reducer.open(SessionStart("hello", "/repo", Permission.EDIT))
    reducer.event({"id": 0, "result": {}})  # initialize
    reducer.event({"id": 1, "result": {"thread": {"id": "th"}}})  # thread/start: the prompt goes
    reducer.event({"method": "turn/completed", "params": {"turn": {"status": "completed"}}})
    assert reducer.knowledge.activity is Activity.WAITING
    written: list[str] = []

    async def write(held: Held, lines: list[str]) -> None:
        written.extend(lines)
        await asyncio.sleep(0)  # meanwhile the reader reads the agent's whole turn
        reducer.event({"method": "turn/started", "params": {"turn": {"id": "t2"}}})
        reducer.event({"method": "turn/completed", "params": {"turn": {"status": "completed"}}})

    monkeypatch.setattr(conversation, "write", write)
    held = Held(SimpleNamespace(two_way=True), SimpleNamespace(reducer=reducer), process=object())  # type: ignore[arg-type]
    core: Any = SimpleNamespace(attached=lambda run_id: held, run=lambda run_id: object())

    async def publish(run_id: str, held: Held) -> None:
        pass

    async def apply(effects: Any) -> None:
        pass

    asyncio.run(Conversations(core, apply, publish).message("r1", "and then?"))
    assert any('"turn/start"' in line for line in written)
    assert reducer.knowledge.activity is Activity.WAITING
